/**
 * The health sweep end to end with the real signing-keys, licensing and fleet-sweep over mTLS,
 * on both drivers: time-driven transitions with settings shrunk to seconds (the apps' shared
 * clock advanced instead of sleeping), idempotent re-runs writing nothing, exactly-once under
 * concurrency (two sweeps, two direct Reconcile calls on one page), dry run = real run,
 * licensing stopped mid-sweep, and Reconcile's refusals.
 */
import { toJsonString } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { AuditEventSchema } from "@lcp/proto/audit/v1/audit_service_pb";
import { Code, ConnectError } from "@connectrpc/connect";
import { SweepStatus, type SweepRun } from "@lcp/proto/fleet/v1/fleet_sweep_service_pb";
import { DeploymentState, LockReason, type Transition } from "@lcp/proto/licensing/v1/types_pb";
import { testDatabases } from "@lcp/testing/db";
import { afterEach, describe, expect, it } from "vitest";
import { activate, outboxEvents, ph, provisionAndActivate, seedFleet, startControlPlane, type ControlPlane } from "./real-licensing.js";

const SECOND = 1_000;

async function shrinkSettings(cp: ControlPlane, graceWindowMs = 10 * SECOND): Promise<void> {
  await cp.admin("super_admin").updateSettings({
    settings: {
      heartbeatInterval: durationFromMs(SECOND),
      heartbeatTimeout: durationFromMs(2 * SECOND),
      graceWindow: durationFromMs(graceWindowMs),
      leaseRenewAfter: durationFromMs(SECOND),
    },
    updateMask: { paths: ["heartbeat_interval", "heartbeat_timeout", "grace_window", "lease_renew_after"] },
  });
}

const count = (run: SweepRun | undefined, from: DeploymentState, to: DeploymentState, reason = LockReason.UNSPECIFIED) =>
  Number(run?.transitions.find((t) => t.fromState === from && t.toState === to && t.lockReason === reason)?.count ?? 0n);
const total = (run: SweepRun | undefined) => (run?.transitions ?? []).reduce((n, t) => n + Number(t.count), 0);
// Audit events, not outbox rows: a sweep page stores each kind's events as one run row.
const outboxCount = async (cp: ControlPlane) => (await outboxEvents(cp)).length;
const actions = async (cp: ControlPlane, since: number) => (await outboxEvents(cp, since)).map((e) => e.action);
const maxSeq = async (cp: ControlPlane) => Number((await cp.sql<{ n: number | string | null }>("select max(seq) as n from outbox_event"))[0]!.n ?? 0);
const key = (t: Transition) => `${t.deploymentId}:${t.fromState}>${t.toState}:${t.lockReason}`;

describe.each(testDatabases())("sweep over the real licensing ($name)", (tdb) => {
  let cp: ControlPlane | undefined;
  afterEach(async () => {
    await cp?.close();
    cp = undefined;
  });

  it("drives ACTIVE → GRACE → LOCKED(OFFLINE), term end → LOCKED(EXPIRED), and back to ACTIVE when the box beats again", async () => {
    cp = await startControlPlane(tdb);
    await shrinkSettings(cp);
    const a = await provisionAndActivate(cp);
    const b = await provisionAndActivate(cp);
    const c = await provisionAndActivate(cp, 20 * SECOND);

    // Fresh: nothing to do.
    expect(total((await cp.sweeper().sweep({})).sweep)).toBe(0);

    cp.clock.advance(3 * SECOND);
    let since = await maxSeq(cp);
    let run = (await cp.sweeper().sweep({})).sweep;
    expect(run).toMatchObject({ status: SweepStatus.SUCCEEDED, examined: 3n });
    expect(count(run, DeploymentState.ACTIVE, DeploymentState.GRACE)).toBe(3);
    expect(await actions(cp, since)).toEqual(["deployment.offline", "deployment.offline", "deployment.offline"]);

    // Box A beats. A healthy beat reaches the row as the heartbeat writer's batched flush does:
    // last_seen_at moves, version does not — so only the re-derivation can bring it back.
    const beat = async (deploymentId: string) =>
      cp!.sql(`update deployment set last_seen_at = ${ph(cp!, 1)} where id = ${ph(cp!, 2)}`, [
        cp!.licensingDb.databaseUrl ? cp!.clock.now().toISOString() : cp!.clock.now().getTime(),
        deploymentId,
      ]);
    await beat(a.deploymentId);
    since = await maxSeq(cp);
    run = (await cp.sweeper().sweep({})).sweep;
    expect(count(run, DeploymentState.GRACE, DeploymentState.ACTIVE)).toBe(1);
    expect(total(run)).toBe(1);
    expect(await actions(cp, since)).toEqual(["deployment.online"]);
    const directives = await cp.sql<{ type: string }>(`select type from directive where deployment_id = ${ph(cp, 1)} order by id`, [a.deploymentId]);
    expect(directives.map((d) => d.type)).toEqual(["REACTIVATE", "RENEW_LEASE"]);

    // Past the grace window for B and C (silent 11 s > 10 s); A beat 8 s ago: GRACE.
    cp.clock.advance(8 * SECOND);
    since = await maxSeq(cp);
    run = (await cp.sweeper().sweep({})).sweep;
    expect(count(run, DeploymentState.GRACE, DeploymentState.LOCKED, LockReason.OFFLINE)).toBe(2);
    expect(count(run, DeploymentState.ACTIVE, DeploymentState.GRACE)).toBe(1);
    expect((await actions(cp, since)).sort()).toEqual(["deployment.offline", "deployment.offline", "deployment.offline"]);
    // No LOCK is queued for an OFFLINE lock: the absent box locked itself on its lease.
    expect((await cp.sql<{ type: string }>(`select type from directive where deployment_id = ${ph(cp, 1)}`, [b.deploymentId])).map((d) => d.type)).toEqual([]);

    // B's box is reinstalled (activates again): ACTIVE through activation. C's term ends.
    await activate(cp, b.license, b.box);
    cp.clock.advance(10 * SECOND);
    await beat(b.deploymentId);
    since = await maxSeq(cp);
    run = (await cp.sweeper().sweep({})).sweep;
    expect(count(run, DeploymentState.LOCKED, DeploymentState.LOCKED, LockReason.EXPIRED)).toBe(1);
    expect(count(run, DeploymentState.GRACE, DeploymentState.LOCKED, LockReason.OFFLINE)).toBe(1);
    expect(total(run)).toBe(2);
    expect((await actions(cp, since)).sort()).toEqual(["deployment.offline", "license.expire"]);
    const states = await cp.sql<{ id: string; state: string; lock_reason: string | null }>("select id, state, lock_reason from deployment");
    const byId = new Map(states.map((s) => [s.id, s]));
    expect(byId.get(a.deploymentId)).toMatchObject({ state: "LOCKED", lock_reason: "OFFLINE" });
    expect(byId.get(b.deploymentId)).toMatchObject({ state: "ACTIVE", lock_reason: null });
    expect(byId.get(c.deploymentId)).toMatchObject({ state: "LOCKED", lock_reason: "EXPIRED" });

    // Idempotent: nothing changed, nothing written.
    const before = await outboxCount(cp);
    run = (await cp.sweeper().sweep({})).sweep;
    expect(total(run)).toBe(0);
    expect(await outboxCount(cp)).toBe(before);
  });

  it("applies each transition exactly once under concurrency over 10,000 deployments; a second sweep writes nothing", async () => {
    cp = await startControlPlane(tdb);
    const at = cp.clock.now();
    // Every fourth last seen 10 min ago: past the default 5 min timeout, within the 14 d grace window.
    await seedFleet(cp, { count: 10_000, at, staleEvery: 4, staleMs: 10 * 60_000 });
    const baseline = await outboxCount(cp);

    // Two direct Reconcile calls over the same page at once: compare-and-set lets each row move once.
    const [r1, r2] = await Promise.all([
      cp.reconciler.reconcile({ sweepId: "direct-1", now: timestampFromDate(at), pageSize: 5_000 }),
      cp.reconciler.reconcile({ sweepId: "direct-2", now: timestampFromDate(at), pageSize: 5_000 }),
    ]);
    const applied = [...r1.transitions, ...r2.transitions].map(key);
    expect(new Set(applied).size).toBe(applied.length);
    expect(applied.length).toBe(1_250);
    // The per-kind counts agree with the entries.
    expect([...r1.counts, ...r2.counts].reduce((n, c) => n + c.count, 0)).toBe(1_250);
    // The loser's compare-and-set failed on every row the winner moved (or it read after the commit).
    expect(r1.conflicts + r2.conflicts).toBeLessThanOrEqual(1_250);
    expect(await outboxCount(cp)).toBe(baseline + 1_250);

    // Two whole sweeps at once (each its own sweep id, walking every page): between them the
    // remaining 1,250 rows move exactly once, whichever of the two wins each page.
    const walk = async (sweepId: string) => {
      const moved: string[] = [];
      let after = "";
      do {
        const page = await cp!.reconciler.reconcile({ sweepId, now: timestampFromDate(at), afterDeploymentId: after, pageSize: 1_000 });
        moved.push(...page.transitions.map(key));
        after = page.nextAfterDeploymentId;
      } while (after);
      return moved;
    };
    const [w1, w2] = await Promise.all([walk("walk-1"), walk("walk-2")]);
    const walked = [...w1, ...w2];
    expect(new Set([...applied, ...walked]).size).toBe(applied.length + walked.length);
    expect(walked.length).toBe(1_250);
    expect(await outboxCount(cp)).toBe(baseline + 2_500);
    const events = (await outboxEvents(cp)).filter((e) => e.action === "deployment.offline");
    expect(new Set(events.map((e) => toJsonString(AuditEventSchema, e))).size).toBe(2_500);

    // Two on-demand sweeps at once: one runs, the other is refused with Aborted naming it.
    const results = await Promise.allSettled([cp.sweeper().sweep({ pageSize: 1_000 }), cp.sweeper().sweep({ pageSize: 1_000 })]);
    const ok = results.filter((r) => r.status === "fulfilled");
    const refused = results.filter((r) => r.status === "rejected");
    expect(ok).toHaveLength(1);
    expect(refused).toHaveLength(1);
    const error = ConnectError.from((refused[0] as PromiseRejectedResult).reason);
    expect(error.code).toBe(Code.Aborted);
    const run = (ok[0] as PromiseFulfilledResult<{ sweep?: SweepRun }>).value.sweep;
    expect(error.rawMessage).toContain(run!.id);
    expect(run).toMatchObject({ status: SweepStatus.SUCCEEDED, examined: 10_000n });
    expect(total(run)).toBe(0);
    expect(await outboxCount(cp)).toBe(baseline + 2_500);

    // Idempotent: a second sweep over the unchanged fleet makes 0 transitions and 0 audit events.
    const again = (await cp.sweeper().sweep({ pageSize: 1_000 })).sweep;
    expect(again).toMatchObject({ status: SweepStatus.SUCCEEDED, examined: 10_000n, transitions: [] });
    expect(await outboxCount(cp)).toBe(baseline + 2_500);
    const grace = await cp.sql<{ n: number | string }>("select count(*) as n from deployment where state = 'GRACE'");
    expect(Number(grace[0]!.n)).toBe(2_500);
  });

  it("a dry run after shortening the grace window lists exactly the transitions a real run then applies", async () => {
    cp = await startControlPlane(tdb);
    const at = cp.clock.now();
    await seedFleet(cp, { count: 300, at, staleEvery: 3, staleMs: 20 * 60_000 });
    await seedFleet(cp, { count: 300, at, staleEvery: 5, staleMs: 60 * 60_000, prefix: "00000001" });
    // 30 minutes: the hour-silent boxes are now past it, the 20-minute ones in GRACE.
    // (lease_renew_after must stay below the grace window, so it shrinks with it.)
    await cp.admin("super_admin").updateSettings({
      settings: { graceWindow: durationFromMs(30 * 60_000), leaseRenewAfter: durationFromMs(10 * 60_000) },
      updateMask: { paths: ["grace_window", "lease_renew_after"] },
    });
    const before = await outboxCount(cp);
    const dry = (await cp.sweeper().sweep({ dryRun: true, pageSize: 100 })).sweep!;
    expect(dry).toMatchObject({ dryRun: true, status: SweepStatus.SUCCEEDED, examined: 600n });
    expect(await outboxCount(cp)).toBe(before);
    expect(count(dry, DeploymentState.ACTIVE, DeploymentState.GRACE)).toBe(100);
    expect(count(dry, DeploymentState.ACTIVE, DeploymentState.LOCKED, LockReason.OFFLINE)).toBe(60);

    const since = await maxSeq(cp);
    const real = (await cp.sweeper().sweep({ pageSize: 100 })).sweep!;
    expect(real.transitions).toEqual(dry.transitions);
    // Every planned transition was applied, and nothing else: the audit trail names the same rows.
    const auditedIds = (await outboxEvents(cp, since)).map((e) => e.resource!.id).sort();
    expect(auditedIds).toEqual(dry.planned.map((p) => p.deploymentId).sort());
  });

  it("licensing stopped mid-sweep: the run is FAILED with what was done, the next run completes the rest, nothing twice", async () => {
    cp = await startControlPlane(tdb);
    const at = cp.clock.now();
    await seedFleet(cp, { count: 4_000, at, staleEvery: 2, staleMs: 10 * 60_000 });
    const baseline = await outboxCount(cp);
    // Stop licensing once the sweep is under way (its first pages are done).
    const running = cp.sweeper().sweep({ pageSize: 200 });
    for (let i = 0; i < 400 && (await outboxCount(cp)) - baseline < 300; i++) await new Promise((r) => setTimeout(r, 5));
    await cp.stopLicensing();
    const failed = (await running).sweep!;
    expect(failed.status).toBe(SweepStatus.FAILED);
    // Each range's page in flight (two side by side by default) may be the one that failed.
    expect(Number(failed.failures)).toBeGreaterThanOrEqual(1);
    expect(Number(failed.failures)).toBeLessThanOrEqual(2);
    expect(failed.error).toMatch(/licensing Reconcile failed/);
    expect(Number(failed.examined)).toBeGreaterThan(0);
    expect(Number(failed.examined)).toBeLessThan(4_000);
    const doneFirst = total(failed);
    expect(doneFirst).toBe(await outboxCount(cp) - baseline);

    await cp.startLicensingAgain();
    const next = (await cp.sweeper().sweep({ pageSize: 200 })).sweep!;
    expect(next).toMatchObject({ status: SweepStatus.SUCCEEDED, examined: 4_000n });
    expect(doneFirst + total(next)).toBe(2_000);
    expect(await outboxCount(cp)).toBe(baseline + 2_000);
    const grace = await cp.sql<{ n: number | string }>("select count(*) as n from deployment where state = 'GRACE'");
    expect(Number(grace[0]!.n)).toBe(2_000);
  });

  it("SplitFleet cuts the fleet into even key ranges (one on SQLite); pages bounded by up_to stay in theirs; bad parts and bounds are refused", async () => {
    cp = await startControlPlane(tdb);
    const code = (p: Promise<unknown>) => p.then(() => -1, (e: unknown) => ConnectError.from(e).code);
    const id = (n: number) => `00000000-0000-7000-8000-${String(n).padStart(12, "0")}`;
    expect((await cp.reconciler.splitFleet({ parts: 4 })).boundaries).toEqual([]);
    // Statistics taken while the table was empty say nothing of its size later.
    if (tdb.name === "postgresql") await cp.sql("analyze deployment");
    const at = cp.clock.now();
    await seedFleet(cp, { count: 1_000, at, staleEvery: 10, staleMs: 10 * 60_000 });

    expect((await cp.reconciler.splitFleet({ parts: 1 })).boundaries).toEqual([]);
    const split = async (parts: number) => (await cp!.reconciler.splitFleet({ parts })).boundaries;
    if (tdb.name === "postgresql") {
      // Sized by the planner's estimate, or by a count when the table was never analysed: both exact here.
      expect(await split(4)).toEqual([id(250), id(500), id(750)]);
      await cp.sql("analyze deployment");
      expect(await split(4)).toEqual([id(250), id(500), id(750)]);
      // Not a divisor: every range but the last holds ceil(1000 / 3) = 334.
      expect(await split(3)).toEqual([id(334), id(668)]);
      // More parts than deployments: one per deployment, none ending on the last one.
      await cp.sql("delete from deployment where id > $1", [id(5)]);
      await cp.sql("analyze deployment");
      expect(await split(64)).toEqual([id(1), id(2), id(3), id(4)]);
      // A fleet that doubled since the last ANALYZE: sized, as the planner does, by its pages now.
      await cp.sql("truncate deployment cascade");
      await seedFleet(cp, { count: 1_000, at, staleEvery: 10, staleMs: 10 * 60_000 });
      await cp.sql("analyze deployment");
      await seedFleet(cp, { count: 1_000, at, staleEvery: 10, staleMs: 10 * 60_000, prefix: "00000001" });
      const [middle] = await split(2);
      const before = await cp.sql<{ n: number | string }>("select count(*) as n from deployment where id <= $1", [middle]);
      expect(Math.abs(Number(before[0]!.n) - 1_000)).toBeLessThanOrEqual(100);
      await cp.sql("delete from deployment");
      await seedFleet(cp, { count: 1_000, at, staleEvery: 10, staleMs: 10 * 60_000 });
    } else {
      // One writer, driven from licensing's event loop: SQLite runs one page at a time, so one range.
      expect(await split(4)).toEqual([]);
    }

    // The second quarter, in pages of 100 with the 250th's neighbours outside it: 250 examined,
    // its 25 stale rows moved, the last page says so, and nothing outside the range changed.
    let after = id(250);
    let examined = 0;
    let moved = 0;
    do {
      const page = await cp.reconciler.reconcile({ sweepId: "q2", now: timestampFromDate(at), afterDeploymentId: after, upToDeploymentId: id(500), pageSize: 100, countsOnly: true });
      examined += page.examined;
      moved += page.counts.reduce((n, c) => n + c.count, 0);
      after = page.nextAfterDeploymentId;
      if (after) expect(after <= id(500)).toBe(true);
    } while (after);
    expect({ examined, moved }).toEqual({ examined: 250, moved: 25 });
    const grace = await cp.sql<{ id: string }>("select id from deployment where state = 'GRACE' order by id");
    expect(grace.map((r) => r.id)).toEqual(Array.from({ length: 25 }, (_, i) => id(260 + i * 10)));
    // A bound that ends exactly at a page's end: that page is the range's last.
    const exact = await cp.reconciler.reconcile({ now: timestampFromDate(at), afterDeploymentId: id(500), upToDeploymentId: id(600), pageSize: 100, dryRun: true });
    expect({ examined: exact.examined, next: exact.nextAfterDeploymentId }).toEqual({ examined: 100, next: "" });

    for (const parts of [0, -1, 65]) expect(await code(cp.reconciler.splitFleet({ parts }))).toBe(Code.InvalidArgument);
    expect(await code(cp.adminReconciler("super_admin").splitFleet({ parts: 2 }))).toBe(Code.PermissionDenied);
    expect(await code(cp.reconciler.reconcile({ upToDeploymentId: "not-an-id" }))).toBe(Code.InvalidArgument);
    expect(await code(cp.reconciler.reconcile({ afterDeploymentId: id(500), upToDeploymentId: id(500) }))).toBe(Code.InvalidArgument);
    expect(await code(cp.reconciler.reconcile({ afterDeploymentId: id(500), upToDeploymentId: id(499) }))).toBe(Code.InvalidArgument);
    // Refused before anything was written: the second quarter's 25 are still the only ones moved.
    expect((await cp.sql("select id from deployment where state = 'GRACE'")).length).toBe(25);
  });

  it("refuses a Reconcile from an admin, a now too far from server time, and a bad page size", async () => {
    cp = await startControlPlane(tdb);
    const code = (p: Promise<unknown>) => p.then(() => -1, (e: unknown) => ConnectError.from(e).code);
    // Through the sweep's own API, over the real stack.
    expect(await code(cp.sweeper().sweep({ pageSize: -1 }))).toBe(Code.InvalidArgument);
    expect(await code(cp.sweeper().getSweep({ sweepId: "01890000-0000-7000-8000-000000000000" }))).toBe(Code.NotFound);
    expect(await code(cp.sweeper("auditor").sweep({}))).toBe(Code.PermissionDenied);
    expect(await code(cp.adminReconciler("super_admin").reconcile({}))).toBe(Code.PermissionDenied);
    const now = cp.clock.now().getTime();
    expect(await code(cp.reconciler.reconcile({ now: timestampFromDate(new Date(now + 10 * 60_000)) }))).toBe(Code.InvalidArgument);
    expect(await code(cp.reconciler.reconcile({ now: timestampFromDate(new Date(now - 10 * 60_000)) }))).toBe(Code.InvalidArgument);
    expect(await code(cp.reconciler.reconcile({ pageSize: -1 }))).toBe(Code.InvalidArgument);
    expect(await code(cp.reconciler.reconcile({ pageSize: 50_001 }))).toBe(Code.InvalidArgument);
    expect(await code(cp.reconciler.reconcile({ afterDeploymentId: "x".repeat(100) }))).toBe(Code.InvalidArgument);
    // counts_only answers with the tallies and no per-deployment entries.
    await seedFleet(cp, { count: 10, at: cp.clock.now(), staleEvery: 2, staleMs: 10 * 60_000 });
    const counted = await cp.reconciler.reconcile({ countsOnly: true, dryRun: true });
    expect(counted.transitions).toEqual([]);
    expect(counted.counts.map((c) => [c.fromState, c.toState, c.count])).toEqual([[DeploymentState.ACTIVE, DeploymentState.GRACE, 5]]);
    await cp.sql("delete from deployment");
    // Within the skew, and with everything defaulted: fine.
    expect((await cp.reconciler.reconcile({ now: timestampFromDate(new Date(now + 60_000)) })).examined).toBe(0);
    expect((await cp.reconciler.reconcile({})).nextAfterDeploymentId).toBe("");
  });
});
