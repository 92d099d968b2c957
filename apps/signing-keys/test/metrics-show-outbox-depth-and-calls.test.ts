/**
 * An operator's Prometheus sees the audit backlog: with no AUDIT_URL nothing is delivered, so
 * every key change adds to `signing_keys_outbox_depth`, and the calls that made them are counted.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testDatabases } from "@lcp/testing/db";
import { metricValue, scrapeMetrics } from "@lcp/testing/metrics";
import { startHarness, type SigningKeysHarness } from "./support.js";

describe.each(testDatabases())("metrics ($name)", (tdb) => {
  let h: SigningKeysHarness;
  beforeAll(async () => {
    h = await startHarness(tdb);
  });
  afterAll(async () => {
    await h?.close();
  });

  it("counts undelivered audit events and the calls that wrote them", async () => {
    const before = await scrapeMetrics(h.app.url, h.pki.ca.certPem);
    const depthBefore = metricValue(before, "signing_keys_outbox_depth");
    expect(depthBefore).toBeGreaterThan(0); // the first keys and CA were audited at first start
    await h.admin.createKey({ reason: "metrics test" });
    await h.admin.createKey({ reason: "metrics test" });
    const after = await scrapeMetrics(h.app.url, h.pki.ca.certPem);
    expect(metricValue(after, "signing_keys_outbox_depth")).toBe(depthBefore + 2);
    expect(metricValue(after, "signing_keys_outbox_oldest_pending_age_seconds")).toBeGreaterThanOrEqual(0);
    expect(metricValue(after, "signing_keys_rpc_server_calls_total", { grpc_method: "CreateKey", grpc_code: "ok" })).toBe(2);
  });
});
