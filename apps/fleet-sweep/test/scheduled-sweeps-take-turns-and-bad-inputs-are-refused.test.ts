/**
 * Scheduled runs every interval (trigger SCHEDULED, requested by "scheduler"), never two at once
 * even with several replicas scheduling, nothing applied twice; ListSweeps pages newest first;
 * bad inputs and callers get the right codes.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { SweepStatus, SweepTrigger, type SweepRun } from "@lcp/proto/fleet/v1/fleet_sweep_service_pb";
import { errorReason } from "@lcp/rpc";
import { testDatabases } from "@lcp/testing/db";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { afterEach, describe, expect, it } from "vitest";
import { fleetOf, startFakeLicensing, startSweepUnderTest } from "./support.js";

const codeOf = (p: Promise<unknown>) => p.then(() => -1, (e: unknown) => ConnectError.from(e).code);

describe.each(testDatabases())("scheduled sweeps and inputs ($name)", (tdb) => {
  const open: Array<{ close(): Promise<void> }> = [];
  afterEach(async () => {
    for (const o of open.splice(0).reverse()) await o.close();
  });
  const track = <T extends { close(): Promise<void> }>(o: T) => (open.push(o), o);

  it("runs every interval, one run at a time across replicas, applying each transition once", async () => {
    const licensing = track(await startFakeLicensing(fleetOf(400, 4)));
    // Pages slow enough that runs of the two replicas would overlap if the lock let them.
    licensing.beforePage = () => new Promise((r) => setTimeout(r, 40));
    const a = track(await startSweepUnderTest(tdb, licensing.url, { sweepIntervalMs: 150, pageSize: 100 }));
    const replicas = tdb.name === "postgresql" ? [a, track(await startSweepUnderTest(tdb, licensing.url, { sweepIntervalMs: 150, pageSize: 100 }, a.db))] : [a];
    await new Promise((r) => setTimeout(r, 2_000));
    for (const r of replicas) await r.app.close();

    const runs: SweepRun[] = [];
    const reader = track(await startSweepUnderTest(tdb, licensing.url, {}, a.db));
    let pageToken = "";
    do {
      const page = await reader.client().listSweeps({ pageSize: 2, pageToken });
      runs.push(...page.sweeps);
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(runs.length).toBeGreaterThanOrEqual(2);
    // Newest first, no duplicates across pages.
    expect(new Set(runs.map((r) => r.id)).size).toBe(runs.length);
    expect([...runs.map((r) => r.id)].sort().reverse()).toEqual(runs.map((r) => r.id));
    for (const r of runs) expect(r).toMatchObject({ trigger: SweepTrigger.SCHEDULED, requestedBy: "scheduler" });
    // Never two at once: each run started after the previous one finished.
    const ordered = [...runs].reverse();
    for (let i = 1; i < ordered.length; i++) {
      expect(timestampMs(ordered[i]!.startTime!)).toBeGreaterThanOrEqual(timestampMs(ordered[i - 1]!.finishTime!));
    }
    expect(runs.find((r) => r.status === SweepStatus.SUCCEEDED && r.transitions.length > 0)?.transitions[0]?.count).toBe(100n);
    expect(licensing.fleet.filter((d) => d.applied === 1)).toHaveLength(100);
    expect(licensing.fleet.every((d) => d.applied <= 1)).toBe(true);
  });

  it("refuses bad inputs and callers with the right codes", async () => {
    const licensing = track(await startFakeLicensing(fleetOf(5, 2)));
    const sweep = track(await startSweepUnderTest(tdb, licensing.url));
    const client = sweep.client();

    const negative = await client.sweep({ pageSize: -1 }).catch((e: unknown) => ConnectError.from(e));
    expect(negative).toMatchObject({ code: Code.InvalidArgument });
    expect(errorReason(negative)).toBe("INVALID_ARGUMENT");
    expect(await codeOf(client.sweep({ pageSize: 50_001 }))).toBe(Code.InvalidArgument);
    expect(await codeOf(client.sweep({ pageSize: 2 ** 31 - 1 }))).toBe(Code.InvalidArgument);
    expect(await codeOf(client.listSweeps({ pageSize: -5 }))).toBe(Code.InvalidArgument);
    expect(await codeOf(client.listSweeps({ pageToken: "not-a-token" }))).toBe(Code.InvalidArgument);
    expect(await codeOf(client.getSweep({ sweepId: "01890000-0000-7000-8000-000000000000" }))).toBe(Code.NotFound);
    expect(await codeOf(client.getSweep({ sweepId: "nope" }))).toBe(Code.NotFound);
    // An auditor may read licences but not sweep (fleet.sweep is support and super_admin).
    expect(await codeOf(sweep.client(["auditor"]).sweep({}))).toBe(Code.PermissionDenied);
    expect(await codeOf(sweep.client(["onboarding"]).listSweeps({}))).toBe(Code.PermissionDenied);
    // Nothing ran.
    expect(licensing.requests).toHaveLength(0);
    expect((await client.listSweeps({})).sweeps).toHaveLength(0);
    expect((await client.sweep({ pageSize: 50_000 })).sweep).toMatchObject({ status: SweepStatus.SUCCEEDED, examined: 5n });
    // A real run asks licensing for the tallies only; the report still counts every transition.
    expect(licensing.requests.at(-1)).toMatchObject({ pageSize: 50_000, dryRun: false, countsOnly: true });
  });
});
