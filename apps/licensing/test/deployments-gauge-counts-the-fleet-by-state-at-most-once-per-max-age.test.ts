/**
 * `licensing_deployments{state}` on /metrics: the fleet by derived state as GetFleetSummary counts
 * it, every state present (zero included). A scrape within `fleetMetricsMaxAgeMs` of the last count
 * is answered from it — the whole-table GROUP BY does not run per scrape — and the count moves
 * with the clock alone once it is older.
 */
import { testDatabases } from "@lcp/testing/db";
import { metricValue, scrapeMetrics } from "@lcp/testing/metrics";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { activateBox, newBox, provisionOnPrem, startHarness, type LicensingHarness } from "./support.js";

const MAX_AGE = 60_000;
const STATES = ["PENDING", "ACTIVE", "GRACE", "SUSPENDED", "LOCKED(OFFLINE)", "LOCKED(EXPIRED)", "LOCKED(REVOKED)"];

describe.each(testDatabases())("licensing_deployments ($name)", (tdb) => {
  let h: LicensingHarness;
  beforeAll(async () => {
    h = await startHarness(tdb, { fleetMetricsMaxAgeMs: MAX_AGE });
  });
  afterAll(async () => {
    await h?.close();
  });

  /** The gauge by state, as one scrape shows it. */
  async function byState(): Promise<Record<string, number>> {
    const text = await scrapeMetrics(h.licensing.url, h.pki.ca.certPem);
    return Object.fromEntries(STATES.map((state) => [state, metricValue(text, "licensing_deployments", { state })]));
  }
  const only = (state: string, n: number) => Object.fromEntries(STATES.map((s) => [s, s === state ? n : 0]));

  it("counts by derived state, answers from the last count within the max age, and recounts after it", async () => {
    expect(await byState()).toEqual(only("ACTIVE", 0));

    const { deployment, license } = await provisionOnPrem(h);
    await activateBox(h, license, await newBox(h, deployment.id));
    // Within the max age of the first count: the same answer, no new query.
    expect(await byState()).toEqual(only("ACTIVE", 0));

    h.clock.advance(MAX_AGE + 1);
    expect(await byState()).toEqual(only("ACTIVE", 1));

    // Past the default 5 min heartbeat timeout: GRACE by time alone, as GetFleetSummary says.
    h.clock.advance(10 * 60_000);
    expect(await byState()).toEqual(only("GRACE", 1));
    const summary = await h.admin("support").getFleetSummary({});
    expect(summary.total).toBe(1n);

    // A clock that went back (a corrected host clock) recounts rather than trusting a count from the future.
    h.clock.advance(-10 * 60_000);
    expect(await byState()).toEqual(only("ACTIVE", 1));
    h.clock.advance(-(MAX_AGE + 1));
  });
});
