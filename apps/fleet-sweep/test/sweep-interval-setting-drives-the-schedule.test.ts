/**
 * Licensing's sweep_interval setting (screen licensing/settings, UpdateSettings) drives
 * fleet-sweep's schedule, without a restart: the stored setting overrides SWEEP_INTERVAL; a
 * shorter one brings the next run forward at once and a longer one pushes it back; while
 * licensing is down the scheduler keeps the interval it learnt; with no stored settings row
 * SWEEP_INTERVAL is the interval; and SWEEP_INTERVAL=off keeps scheduled runs off whatever the
 * setting says. Real signing-keys, licensing and fleet-sweep over mTLS; the setting read every
 * 100 ms instead of 30 s, intervals at the setting's 1 s minimum.
 */
import { durationFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { SweepStatus, SweepTrigger } from "@lcp/proto/fleet/v1/fleet_sweep_service_pb";
import { testDatabases } from "@lcp/testing/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startControlPlane, type ControlPlane } from "./real-licensing.js";

const POLL_MS = 100;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The scheduled runs stored so far, oldest first. */
async function scheduledRuns(cp: ControlPlane) {
  const { sweeps } = await cp.sweeper().listSweeps({ pageSize: 500 });
  return sweeps.filter((r) => r.trigger === SweepTrigger.SCHEDULED).reverse();
}

async function setSweepInterval(cp: ControlPlane, ms: number): Promise<void> {
  await cp.admin("super_admin").updateSettings({ settings: { sweepInterval: durationFromMs(ms) } });
}

describe.each(testDatabases())("sweep_interval drives the schedule ($name)", (tdb) => {
  let cp: ControlPlane;
  beforeAll(async () => {
    // SWEEP_INTERVAL=1s: were it used, runs would come every second from the start.
    cp = await startControlPlane(tdb, { sweepIntervalMs: 1_000, sweepSchedulePollMs: POLL_MS });
  });
  afterAll(async () => {
    await cp?.close();
  });

  it("follows the stored setting over SWEEP_INTERVAL, and each change of it without a restart", async () => {
    // Licensing stores the default setting (1 min) at start: that, not SWEEP_INTERVAL, is the schedule.
    await sleep(1_800);
    expect(await scheduledRuns(cp)).toHaveLength(0);

    await setSweepInterval(cp, 1_000);
    const changed = Date.now();
    let runs = await waitForRuns(cp, 2, 5_000);
    // The first run comes within the new interval of the wait that was under way, not a minute later.
    expect(timestampMs(runs[0]!.startTime!)).toBeLessThan(changed + 1_000);

    await setSweepInterval(cp, 86_400_000);
    await sleep(POLL_MS * 5);
    runs = await scheduledRuns(cp);
    await sleep(2_500);
    expect(await scheduledRuns(cp)).toHaveLength(runs.length);
  });

  it("keeps the interval it learnt while licensing is down", async () => {
    await setSweepInterval(cp, 1_000);
    await waitForRuns(cp, (await scheduledRuns(cp)).length + 1, 5_000);
    await cp.stopLicensing();
    try {
      const before = (await scheduledRuns(cp)).length;
      await sleep(2_600);
      const during = (await scheduledRuns(cp)).slice(before);
      // Runs still every second; each fails, licensing being away.
      expect(during.length).toBeGreaterThanOrEqual(2);
      expect(during.every((r) => r.status === SweepStatus.FAILED)).toBe(true);
    } finally {
      await cp.startLicensingAgain();
    }
  });

  it("falls back to SWEEP_INTERVAL when licensing stores no settings row", async () => {
    await setSweepInterval(cp, 86_400_000);
    await sleep(POLL_MS * 5);
    const before = (await scheduledRuns(cp)).length;
    await cp.sql("delete from settings");
    // SWEEP_INTERVAL (1 s) again: runs resume.
    await waitForRuns(cp, before + 2, 5_000);
  });
});

describe.each(testDatabases())("SWEEP_INTERVAL=off ($name)", (tdb) => {
  let cp: ControlPlane;
  beforeAll(async () => {
    cp = await startControlPlane(tdb, { sweepIntervalMs: null, sweepSchedulePollMs: POLL_MS });
  });
  afterAll(async () => {
    await cp?.close();
  });

  it("keeps scheduled runs off whatever the setting says", async () => {
    await setSweepInterval(cp, 1_000);
    await sleep(2_500);
    expect(await scheduledRuns(cp)).toHaveLength(0);
    // On demand still works.
    await cp.sweeper().sweep({});
    expect((await cp.sweeper().listSweeps({})).sweeps).toHaveLength(1);
  });
});

/** Waits until at least `n` scheduled runs are stored; returns them. */
async function waitForRuns(cp: ControlPlane, n: number, ms: number) {
  const deadline = Date.now() + ms;
  for (;;) {
    const runs = await scheduledRuns(cp);
    if (runs.length >= n) return runs;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} scheduled runs (${runs.length} so far)`);
    await sleep(50);
  }
}
