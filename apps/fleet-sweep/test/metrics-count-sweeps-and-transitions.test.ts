/** Prometheus sees each finished sweep: its duration by status and trigger, and its transitions. */
import { testDatabases } from "@lcp/testing/db";
import { metricValue, scrapeMetrics } from "@lcp/testing/metrics";
import { createTestPki } from "@lcp/testing/pki";
import { afterEach, describe, expect, it } from "vitest";
import { fleetOf, startFakeLicensing, startSweepUnderTest } from "./support.js";

describe.each(testDatabases())("sweep metrics ($name)", (tdb) => {
  const open: Array<{ close(): Promise<void> }> = [];
  afterEach(async () => {
    for (const o of open.splice(0).reverse()) await o.close();
  });

  it("records the run's duration and its transitions, and the outbox holding its audit event", async () => {
    const licensing = await startFakeLicensing(fleetOf(50, 10));
    open.push(licensing);
    const sweep = await startSweepUnderTest(tdb, licensing.url);
    open.push(sweep);
    await sweep.client().sweep({ pageSize: 20 });
    const text = await scrapeMetrics(sweep.app.url, (await createTestPki()).ca.certPem);
    expect(metricValue(text, "fleet_sweep_run_duration_seconds_count", { status: "SUCCEEDED", trigger: "ON_DEMAND" })).toBe(1);
    expect(metricValue(text, "fleet_sweep_transitions_total", { from: "ACTIVE", to: "GRACE" })).toBe(5);
    expect(metricValue(text, "fleet_sweep_examined_total")).toBe(50);
    expect(metricValue(text, "fleet_sweep_outbox_depth")).toBeGreaterThanOrEqual(1);
  });
});
