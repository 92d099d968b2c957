/**
 * The fleet-sweep side against a stand-in licensing: one ONE `now` and sweep id per run, the
 * keyset cursor, an on-demand run refused with Aborted (naming the running sweep) while another
 * replica sweeps, a run stopped by licensing failing is stored FAILED with what was done and the
 * next run completes the rest with nothing applied twice.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { OutboxEvent, outboxPayload } from "@lcp/persistence";
import { SweepStatus, SweepTrigger } from "@lcp/proto/fleet/v1/fleet_sweep_service_pb";
import { DeploymentState } from "@lcp/proto/licensing/v1/types_pb";
import { errorReason } from "@lcp/rpc";
import { testDatabases } from "@lcp/testing/db";
import { afterEach, describe, expect, it } from "vitest";
import { fleetOf, startFakeLicensing, startSweepUnderTest, unavailable, type FakeLicensing, type SweepUnderTest } from "./support.js";

describe.each(testDatabases())("sweep runs against a stand-in licensing ($name)", (tdb) => {
  const open: Array<{ close(): Promise<void> }> = [];
  afterEach(async () => {
    for (const o of open.splice(0).reverse()) await o.close();
  });
  const track = <T extends { close(): Promise<void> }>(o: T) => (open.push(o), o);

  it("pages the whole fleet at one now and one sweep id, and stores the report", async () => {
    const licensing: FakeLicensing = track(await startFakeLicensing(fleetOf(250, 10)));
    const sweep: SweepUnderTest = track(await startSweepUnderTest(tdb, licensing.url));
    const { sweep: run } = await sweep.client().sweep({ pageSize: 100 });
    expect(run).toMatchObject({ status: SweepStatus.SUCCEEDED, trigger: SweepTrigger.ON_DEMAND, examined: 250n, requestedBy: "test-support", error: "" });
    expect(run!.transitions).toEqual([expect.objectContaining({ fromState: DeploymentState.ACTIVE, toState: DeploymentState.GRACE, count: 25n })]);
    expect(licensing.requests.map((r) => r.after)).toEqual(["", licensing.fleet[99]!.id, licensing.fleet[199]!.id]);
    expect(new Set(licensing.requests.map((r) => r.now?.getTime())).size).toBe(1);
    expect(new Set(licensing.requests.map((r) => r.sweepId))).toEqual(new Set([run!.id]));
    expect(licensing.fleet.every((d) => d.applied <= 1)).toBe(true);

    const got = await sweep.client().getSweep({ sweepId: run!.id });
    expect(got.sweep).toEqual(run);
    const events = await sweep.app.db.em().find(OutboxEvent, { action: "fleet.sweep" });
    expect(events).toHaveLength(1);
    const audited = outboxPayload(events[0]!);
    expect(audited.resource).toMatchObject({ type: "sweep", id: run!.id });
    expect(audited.details).toMatchObject({ examined: 250, status: "SUCCEEDED", transitions: { "ACTIVE→GRACE": 25 } });

    // Idempotent from the sweep's side too: nothing left to change.
    const again = await sweep.client().sweep({});
    expect(again.sweep).toMatchObject({ status: SweepStatus.SUCCEEDED, examined: 250n, transitions: [] });
  });

  it("refuses an on-demand run with Aborted naming the running sweep while another replica sweeps", async () => {
    const licensing = track(await startFakeLicensing(fleetOf(300, 3)));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let firstPage!: () => void;
    const started = new Promise<void>((r) => (firstPage = r));
    licensing.beforePage = async (i) => {
      if (i === 1) {
        firstPage();
        await gate;
      }
    };
    const a = track(await startSweepUnderTest(tdb, licensing.url));
    // A second replica on the same database where replicas exist (PostgreSQL); SQLite is one
    // process per file, so there the second caller goes to the same replica.
    const b = tdb.name === "postgresql" ? track(await startSweepUnderTest(tdb, licensing.url, {}, a.db)) : a;

    const running = a.client().sweep({ pageSize: 100 });
    await started;
    const refused = await b.client().sweep({}).catch((e: unknown) => ConnectError.from(e));
    expect(refused).toBeInstanceOf(ConnectError);
    expect((refused as ConnectError).code).toBe(Code.Aborted);
    expect(errorReason(refused)).toBe("SWEEP_IN_PROGRESS");
    const inProgress = await b.client().listSweeps({});
    expect(inProgress.sweeps[0]).toMatchObject({ status: SweepStatus.RUNNING });
    expect((refused as ConnectError).rawMessage).toContain(inProgress.sweeps[0]!.id);
    // Same replica too.
    await expect(a.client().sweep({})).rejects.toMatchObject({ code: Code.Aborted });

    release();
    const done = await running;
    expect(done.sweep).toMatchObject({ status: SweepStatus.SUCCEEDED, examined: 300n });
    expect(licensing.fleet.filter((d) => d.applied === 1)).toHaveLength(100);
    expect(licensing.fleet.every((d) => d.applied <= 1)).toBe(true);
  });

  it("stores a run stopped by licensing as FAILED with what was done; the next run completes the rest", async () => {
    const licensing = track(await startFakeLicensing(fleetOf(500, 5)));
    licensing.beforePage = (i) => {
      if (i === 2) throw unavailable();
    };
    const sweep = track(await startSweepUnderTest(tdb, licensing.url));
    const { sweep: failed } = await sweep.client().sweep({ pageSize: 100 });
    expect(failed).toMatchObject({ status: SweepStatus.FAILED, examined: 200n, failures: 1n });
    expect(failed!.error).toMatch(/licensing Reconcile failed: \[unavailable\]/);
    expect(failed!.transitions[0]?.count).toBe(40n);
    expect(failed!.finishTime).toBeDefined();
    const events = await sweep.app.db.em().find(OutboxEvent, { action: "fleet.sweep" });
    expect(outboxPayload(events[0]!).outcome).toBe(3 /* FAILURE */);

    licensing.beforePage = undefined;
    const { sweep: next } = await sweep.client().sweep({ pageSize: 100 });
    expect(next).toMatchObject({ status: SweepStatus.SUCCEEDED, examined: 500n });
    expect(next!.transitions[0]?.count).toBe(60n);
    expect(licensing.fleet.filter((d) => d.applied === 1)).toHaveLength(100);
    expect(licensing.fleet.every((d) => d.applied <= 1)).toBe(true);
  });

  it("stores a run as FAILED when licensing is not there at all", async () => {
    const licensing = await startFakeLicensing(fleetOf(10, 2));
    const url = licensing.url;
    await licensing.close();
    const sweep = track(await startSweepUnderTest(tdb, url));
    const { sweep: run } = await sweep.client().sweep({});
    expect(run).toMatchObject({ status: SweepStatus.FAILED, examined: 0n, failures: 1n });
    expect(run!.error).toContain("unavailable");
  });

  it("a dry run lists the transitions and applies none", async () => {
    const licensing = track(await startFakeLicensing(fleetOf(50, 10)));
    const sweep = track(await startSweepUnderTest(tdb, licensing.url));
    const { sweep: dry } = await sweep.client().sweep({ dryRun: true, pageSize: 20 });
    expect(dry).toMatchObject({ dryRun: true, status: SweepStatus.SUCCEEDED, examined: 50n });
    expect(dry!.planned.map((p) => p.deploymentId)).toEqual(licensing.fleet.filter((_, i) => i % 10 === 0).map((d) => d.id));
    expect(licensing.requests.every((r) => r.dryRun)).toBe(true);
    expect(licensing.fleet.every((d) => d.applied === 0)).toBe(true);
    expect((await sweep.client().getSweep({ sweepId: dry!.id })).sweep!.planned).toHaveLength(5);
  });
});
