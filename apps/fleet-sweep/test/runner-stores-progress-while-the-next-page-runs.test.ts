/**
 * The runner stores a page's progress in its own database while licensing reconciles the next
 * page — the two databases are apart, so a sweep of many pages does not pay a progress write per
 * page — and still never lets a page count past a lost run lock: a progress write that finds the
 * lock taken aborts the page in flight, and the run ends FAILED with what was done.
 * The store is the real one (SQLite); licensing's Reconcile is a function here, since what is
 * shown is the order of the runner's own calls.
 */
import { create } from "@bufbuild/protobuf";
import { ReconcileResponseSchema, type ReconcileRequest } from "@lcp/proto/licensing/v1/reconcile_service_pb";
import { createLogger } from "@lcp/rpc";
import { afterEach, describe, expect, it } from "vitest";
import { sqliteSweepStores } from "./support.js";
import { createSweepRunner, type ReconcileFn } from "../src/sweep/runner.js";

const PAGES = 4;
const log = createLogger("test", "silent");
const requester = { kind: "admin" as const, id: "alice" };

describe("sweep runner paging", () => {
  const stores = sqliteSweepStores();
  afterEach(() => stores.close());
  const openStore = (leaseMs?: number) => stores.open(leaseMs);

  /** A fleet of PAGES pages of 10; each call is logged. */
  function pagedReconcile(events: string[], onCall?: (page: number, signal: AbortSignal) => Promise<void>): ReconcileFn {
    return async (req: ReconcileRequest, { signal }) => {
      const page = req.afterDeploymentId === "" ? 1 : Number(req.afterDeploymentId.slice(-2)) + 1;
      events.push(`reconcile ${page}`);
      await onCall?.(page, signal);
      const last = `00000000-0000-7000-8000-0000000000${String(page).padStart(2, "0")}`;
      return create(ReconcileResponseSchema, { examined: 10, nextAfterDeploymentId: page < PAGES ? last : "" });
    };
  }

  it("stores page N's progress while page N+1 is reconciled, and every page's count reaches the report", async () => {
    const store = await openStore();
    const events: string[] = [];
    let nextCall: (() => void) | null = null;
    const progress = store.progress.bind(store);
    // A progress write that finishes only once the next Reconcile has been called (or after 0.5 s,
    // which a runner writing before it pages on would show as the order below).
    store.progress = async (runId, p) => {
      events.push(`progress ${p.examined / 10} start`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 500);
        nextCall = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      events.push(`progress ${p.examined / 10} stored`);
      return progress(runId, p);
    };
    const reconcile = pagedReconcile(events, async () => {
      const release = nextCall;
      nextCall = null;
      release?.();
    });
    const runner = createSweepRunner({ store, reconcile, now: () => new Date(), log, leaseMs: 60_000 });
    const outcome = await runner.run({ trigger: "ON_DEMAND", dryRun: false, pageSize: 10, requester });
    await runner.close();

    expect(outcome.ok && outcome.run.status).toBe("SUCCEEDED");
    expect(outcome.ok && outcome.run.examined).toBe(PAGES * 10);
    expect(events.slice(0, 7)).toEqual([
      "reconcile 1",
      "progress 1 start",
      "reconcile 2",
      "progress 1 stored",
      "progress 2 start",
      "reconcile 3",
      "progress 2 stored",
    ]);
  });

  it("the last page is stored by the final report, which finds a run lock lost after it: FAILED with every page counted", async () => {
    const store = await openStore(50);
    const events: string[] = [];
    const progress = store.progress.bind(store);
    store.progress = async (runId, p) => {
      events.push(`progress ${p.examined / 10}`);
      return progress(runId, p);
    };
    const rival = stores.rival("replica-b");
    const reconcile = pagedReconcile(events, async (page) => {
      if (page < PAGES) return;
      // The 50 ms lease lapses during the last page (the runner renews every 250 ms at the least)
      // and another replica takes the lock.
      await new Promise((r) => setTimeout(r, 120));
      events.push(`taken ${(await rival.begin({ trigger: "SCHEDULED", dryRun: false, requestedBy: "b", pageSize: 10, derivedAt: new Date() })).ok}`);
    });
    const runner = createSweepRunner({ store, reconcile, now: () => new Date(), log, leaseMs: 50 });
    const outcome = await runner.run({ trigger: "ON_DEMAND", dryRun: false, pageSize: 10, requester });
    await runner.close();

    expect(events).toEqual(["reconcile 1", "progress 1", "reconcile 2", "progress 2", "reconcile 3", "progress 3", "reconcile 4", "taken true"]);
    expect(outcome.ok && outcome.run).toMatchObject({ status: "FAILED", error: expect.stringMatching(/lost the run lock/), examined: PAGES * 10 });
    // The rival's lock was left alone.
    expect((await rival.begin({ trigger: "SCHEDULED", dryRun: false, requestedBy: "b", pageSize: 10, derivedAt: new Date() })).ok).toBe(false);
  });

  it("a progress write that finds the run lock taken aborts the page in flight; the run is FAILED with what was done", async () => {
    const store = await openStore();
    const events: string[] = [];
    const progress = store.progress.bind(store);
    store.progress = async (runId, p) => (p.examined >= 20 ? false : progress(runId, p));
    let aborted = false;
    const reconcile = pagedReconcile(events, async (page, signal) => {
      if (page < 3) return;
      // Page 3 runs while page 2's record finds the lock gone: it must be stopped, not finished.
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, 5_000);
        signal.addEventListener("abort", () => {
          aborted = true;
          clearTimeout(timer);
          reject(signal.reason);
        });
      });
    });
    const runner = createSweepRunner({ store, reconcile, now: () => new Date(), log, leaseMs: 60_000 });
    const outcome = await runner.run({ trigger: "ON_DEMAND", dryRun: false, pageSize: 10, requester });
    await runner.close();

    expect(aborted).toBe(true);
    expect(events).toEqual(["reconcile 1", "reconcile 2", "reconcile 3"]);
    expect(outcome.ok && outcome.run.status).toBe("FAILED");
    expect(outcome.ok && outcome.run.error).toMatch(/lost the run lock/);
    expect(outcome.ok && outcome.run.examined).toBe(20);
  });
});
