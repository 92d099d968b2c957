/**
 * A run cuts the fleet into key ranges with licensing's SplitFleet and reconciles them side by
 * side, one page in flight per range: every deployment is examined once, the report adds up and
 * lists its kinds (and a dry run its planned rows) in the same order however the pages
 * interleaved; a failed page stops the run after the other ranges' pages in flight have been
 * counted; a licensing without SplitFleet is swept as one range, and a SplitFleet that fails
 * fails the run before anything is reconciled.
 * The store is the real one (SQLite); licensing is a pair of functions over a fleet in memory —
 * the real SplitFleet and bounded pages are in sweep-reconciles-real-licensing.test.ts.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { ReconcileResponseSchema, SplitFleetResponseSchema, type ReconcileRequest } from "@lcp/proto/licensing/v1/reconcile_service_pb";
import { DeploymentState, LockReason, TransitionSchema } from "@lcp/proto/licensing/v1/types_pb";
import { createLogger } from "@lcp/rpc";
import { afterEach, describe, expect, it } from "vitest";
import { createSweepRunner, type ReconcileFn, type SplitFleetFn } from "../src/sweep/runner.js";
import { fakeId, sqliteSweepStores } from "./support.js";

const log = createLogger("test", "silent");
const requester = { kind: "admin" as const, id: "alice" };
const FLEET = Array.from({ length: 90 }, (_, i) => fakeId(i + 1));
const PAGE = 10;

/** Every third deployment goes ACTIVE → GRACE, every seventh (not a third) ACTIVE → LOCKED(OFFLINE). */
function transitionOf(id: string) {
  const n = Number(id.slice(-12));
  if (n % 3 === 0) return { fromState: DeploymentState.ACTIVE, toState: DeploymentState.GRACE, lockReason: LockReason.UNSPECIFIED };
  if (n % 7 === 0) return { fromState: DeploymentState.ACTIVE, toState: DeploymentState.LOCKED, lockReason: LockReason.OFFLINE };
  return null;
}

/** SplitFleet as licensing answers it: every ceil(n / parts)-th id but the last. */
const split: SplitFleetFn = async (req) => {
  const size = Math.ceil(FLEET.length / req.parts);
  return create(SplitFleetResponseSchema, { boundaries: FLEET.filter((_, i) => (i + 1) % size === 0 && i + 1 < FLEET.length) });
};

describe("sweep runner ranges", () => {
  const stores = sqliteSweepStores();
  afterEach(() => stores.close());
  const openStore = () => stores.open();

  /** Reconcile over FLEET honouring the range; `delay` per page start lets the test order the answers. */
  function fleetReconcile(seen: string[], options: { delay?: (req: ReconcileRequest) => number; fail?: (req: ReconcileRequest) => boolean } = {}) {
    let inFlight = 0;
    const stats = { maxInFlight: 0, startedAfterFailure: 0, failed: false };
    const reconcile: ReconcileFn = async (req) => {
      if (stats.failed) stats.startedAfterFailure += 1;
      inFlight += 1;
      stats.maxInFlight = Math.max(stats.maxInFlight, inFlight);
      try {
        await new Promise((r) => setTimeout(r, options.delay?.(req) ?? 5));
        if (options.fail?.(req)) {
          stats.failed = true;
          throw new ConnectError("licensing is down", Code.Unavailable);
        }
        const inRange = FLEET.filter((id) => id > req.afterDeploymentId && (req.upToDeploymentId === "" || id <= req.upToDeploymentId));
        const page = inRange.slice(0, req.pageSize);
        seen.push(...page);
        const transitions = page.flatMap((id) => {
          const t = transitionOf(id);
          return t ? [create(TransitionSchema, { deploymentId: id, ...t })] : [];
        });
        const counts = new Map<string, { fromState: DeploymentState; toState: DeploymentState; lockReason: LockReason; count: number }>();
        for (const t of transitions) {
          const key = `${t.fromState}>${t.toState}>${t.lockReason}`;
          const entry = counts.get(key) ?? { fromState: t.fromState, toState: t.toState, lockReason: t.lockReason, count: 0 };
          entry.count += 1;
          counts.set(key, entry);
        }
        return create(ReconcileResponseSchema, {
          examined: page.length,
          counts: [...counts.values()],
          transitions: req.countsOnly ? [] : transitions,
          nextAfterDeploymentId: inRange.length > page.length ? page[page.length - 1]! : "",
        });
      } finally {
        inFlight -= 1;
      }
    };
    return { reconcile, stats };
  }

  const expectedCounts = () => {
    const grace = FLEET.filter((id) => transitionOf(id)?.toState === DeploymentState.GRACE).length;
    const locked = FLEET.filter((id) => transitionOf(id)?.toState === DeploymentState.LOCKED).length;
    return { grace, locked };
  };

  it("reconciles three ranges side by side, each deployment once, the report adding up in a fixed order", async () => {
    const store = await openStore();
    const seen: string[] = [];
    // The last range answers fastest: its pages, and its kinds, arrive first.
    const { reconcile, stats } = fleetReconcile(seen, { delay: (req) => (req.upToDeploymentId === "" ? 1 : 15) });
    const runner = createSweepRunner({ store, reconcile, split, parallelism: 3, now: () => new Date(), log, leaseMs: 60_000 });
    const outcome = await runner.run({ trigger: "ON_DEMAND", dryRun: false, pageSize: PAGE, requester });
    await runner.close();

    expect(stats.maxInFlight).toBe(3);
    expect([...seen].sort()).toEqual(FLEET);
    const run = outcome.ok ? outcome.run : undefined;
    expect(run).toMatchObject({ status: "SUCCEEDED", examined: 90, failures: 0 });
    const { grace, locked } = expectedCounts();
    // GRACE (3) before LOCKED (5) in the proto's order, though the first page to answer held a LOCKED one first.
    expect(run!.transitions).toEqual([
      { from: "ACTIVE", to: "GRACE", lockReason: null, count: grace },
      { from: "ACTIVE", to: "LOCKED", lockReason: "OFFLINE", count: locked },
    ]);
  });

  it("a dry run lists its planned rows in deployment id order across the ranges", async () => {
    const store = await openStore();
    const { reconcile } = fleetReconcile([], { delay: (req) => (req.upToDeploymentId === "" ? 1 : 15) });
    const runner = createSweepRunner({ store, reconcile, split, parallelism: 3, now: () => new Date(), log, leaseMs: 60_000 });
    const outcome = await runner.run({ trigger: "ON_DEMAND", dryRun: true, pageSize: PAGE, requester });
    await runner.close();
    const planned = outcome.ok ? outcome.run.planned : [];
    expect(planned?.map((p) => p.deploymentId)).toEqual(FLEET.filter((id) => transitionOf(id) !== null));
  });

  it("a failed page stops the run once the other ranges' pages in flight are counted; the run is FAILED with what was done", async () => {
    const store = await openStore();
    const seen: string[] = [];
    // The middle range's second page fails; the others are mid-page then.
    const { reconcile, stats } = fleetReconcile(seen, { fail: (req) => req.afterDeploymentId === fakeId(40) });
    const runner = createSweepRunner({ store, reconcile, split, parallelism: 3, now: () => new Date(), log, leaseMs: 60_000 });
    const outcome = await runner.run({ trigger: "ON_DEMAND", dryRun: false, pageSize: PAGE, requester });
    await runner.close();

    const run = outcome.ok ? outcome.run : undefined;
    expect(run).toMatchObject({ status: "FAILED", failures: 1, error: "licensing Reconcile failed: [unavailable] licensing is down" });
    expect(stats.startedAfterFailure).toBe(0);
    // What was done is what was reported: every page answered counts, no more.
    expect(run!.examined).toBe(seen.length);
    expect(run!.examined).toBeLessThan(90);
    const reported = run!.transitions.reduce((n, t) => n + t.count, 0);
    expect(reported).toBe(seen.filter((id) => transitionOf(id) !== null).length);
  });

  it("sweeps a licensing without SplitFleet as one range, and fails a run whose SplitFleet fails before reconciling anything", async () => {
    const store = await openStore();
    const seen: string[] = [];
    const requests: ReconcileRequest[] = [];
    const { reconcile } = fleetReconcile(seen);
    const recording: ReconcileFn = (req, o) => {
      requests.push(req);
      return reconcile(req, o);
    };
    const unimplemented: SplitFleetFn = async () => {
      throw new ConnectError("no SplitFleet", Code.Unimplemented);
    };
    let runner = createSweepRunner({ store, reconcile: recording, split: unimplemented, parallelism: 3, now: () => new Date(), log, leaseMs: 60_000 });
    const one = await runner.run({ trigger: "ON_DEMAND", dryRun: false, pageSize: PAGE, requester });
    await runner.close();
    expect(one.ok && one.run).toMatchObject({ status: "SUCCEEDED", examined: 90 });
    expect(requests.map((r) => r.upToDeploymentId)).toEqual(Array(9).fill(""));

    requests.length = 0;
    const down: SplitFleetFn = async () => {
      throw new ConnectError("licensing is down", Code.Unavailable);
    };
    runner = createSweepRunner({ store, reconcile: recording, split: down, parallelism: 3, now: () => new Date(), log, leaseMs: 60_000 });
    const failed = await runner.run({ trigger: "ON_DEMAND", dryRun: false, pageSize: PAGE, requester });
    await runner.close();
    expect(failed.ok && failed.run).toMatchObject({ status: "FAILED", examined: 0, failures: 1, error: "licensing SplitFleet failed: [unavailable] licensing is down" });
    expect(requests).toEqual([]);
  });
});
