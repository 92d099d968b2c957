/**
 * One sweep run (docs/design.md §9): take the run lock while licensing cuts the fleet into key ranges
 * (`SplitFleet`), page through each with licensing's `Reconcile` (keyset cursor, the ranges side
 * by side) at ONE `now`, tally the report, store progress after every page but the run's last, and
 * finish with the report and its `fleet.sweep` audit event — in the transaction that releases the
 * run lock, so a run whose lock was taken over is stored FAILED. A failure part-way stores the run as
 * FAILED with what was done; the next run simply sweeps again — pages already reconciled have
 * nothing left to change, so nothing is applied twice.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { newAuditEvent } from "@lcp/persistence";
import {
  ReconcileRequestSchema,
  SplitFleetRequestSchema,
  type ReconcileRequest,
  type ReconcileResponse,
  type SplitFleetRequest,
  type SplitFleetResponse,
} from "@lcp/proto/licensing/v1/reconcile_service_pb";
import { lockReasonFromProto, stateFromProto, type Logger } from "@lcp/rpc";
import {
  MAX_PLANNED,
  type FinalReport,
  type PlannedTransition,
  type SweepProgress,
  type SweepRunView,
  type SweepStore,
  type TransitionTally,
  type TriggerName,
} from "../storage/sweep-store.js";

/** Calls licensing's `ReconcileService.Reconcile` (the typed client's method, or a stand-in). */
export type ReconcileFn = (request: ReconcileRequest, options: { signal: AbortSignal }) => Promise<ReconcileResponse>;
/** Calls licensing's `ReconcileService.SplitFleet`. */
export type SplitFleetFn = (request: SplitFleetRequest, options: { signal: AbortSignal }) => Promise<SplitFleetResponse>;

/** One span of deployment ids a run reconciles page by page, beside the others. */
interface SweepRange {
  /** Ids greater than this ("" from the start)… */
  readonly after: string;
  /** …up to and including this one ("" to the end). */
  readonly upTo: string;
  /** The keyset cursor reached (null before the first page). */
  cursor: string | null;
  done: boolean;
  /** A dry run's planned transitions in this range, in id order. */
  planned: PlannedTransition[];
}

/** Who asked for a run, for the report and the audit trail. */
export interface RunRequester {
  kind: "admin" | "system";
  id: string;
  roles?: readonly string[];
  requestId?: string;
}

/** What a run is asked to do. */
export interface RunRequest {
  trigger: TriggerName;
  dryRun: boolean;
  pageSize: number;
  requester: RunRequester;
}

/** A run: it ran (report), or another run held the lock. */
export type RunOutcome = { ok: true; run: SweepRunView } | { ok: false; runningId: string; owner: string | null };

/** Options of {@link createSweepRunner}. */
export interface SweepRunnerOptions {
  store: SweepStore;
  reconcile: ReconcileFn;
  now: () => Date;
  log: Logger;
  /** The lock lease; it is renewed every third of it while a page is in flight. */
  leaseMs: number;
  /** Licensing's SplitFleet; without it every run is one range. */
  split?: SplitFleetFn | undefined;
  /**
   * How many ranges of the fleet a run reconciles side by side (default 1): each has one page in
   * flight, so licensing's database works on that many pages at once.
   */
  parallelism?: number | undefined;
  /** A run committed its report and audit event (wake the outbox relay). */
  onFinished?: (run: SweepRunView) => void;
}

/** Runs sweeps; `close()` stops a run in progress after its current page (stored FAILED). */
export interface SweepRunner {
  run(request: RunRequest): Promise<RunOutcome>;
  /** Whether a run of this replica is in progress. */
  busy(): boolean;
  close(): Promise<void>;
}

/** Creates the runner (see the module comment). */
export function createSweepRunner(options: SweepRunnerOptions): SweepRunner {
  const { store, reconcile, now, log } = options;
  const parallelism = options.parallelism ?? 1;
  const shutdown = new AbortController();
  const inProgress = new Set<Promise<unknown>>();

  /**
   * The ranges a run reconciles side by side: licensing's SplitFleet cut into `parallelism` parts,
   * or the whole fleet as one. A licensing without SplitFleet (an older replica mid-upgrade) gets
   * one range; any other failure is thrown.
   */
  async function splitRanges(signal: AbortSignal): Promise<SweepRange[]> {
    let boundaries: string[] = [];
    if (parallelism > 1 && options.split) {
      try {
        boundaries = (await options.split(create(SplitFleetRequestSchema, { parts: parallelism }), { signal })).boundaries;
      } catch (err) {
        if (!(err instanceof ConnectError && err.code === Code.Unimplemented)) throw err;
        log.warn("sweep: licensing has no SplitFleet, sweeping the fleet as one range");
      }
    }
    return [...boundaries, ""].map((upTo, i) => ({ after: i === 0 ? "" : boundaries[i - 1]!, upTo, cursor: null, done: false, planned: [] }));
  }

  async function execute(request: RunRequest): Promise<RunOutcome> {
    if (shutdown.signal.aborted) throw new ConnectError("fleet-sweep is shutting down", Code.Unavailable);
    const derivedAt = now();
    // Licensing's SplitFleet (read-only) and the run lock (our own database) do not depend on each
    // other, so they are asked at once; a run refused the lock drops the split unread.
    const splitting = splitRanges(shutdown.signal).then(
      (ranges) => ({ ranges, err: undefined }),
      (err: unknown) => ({ ranges: [] as SweepRange[], err: err ?? new Error("SplitFleet failed") }),
    );
    const begun = await store.begin({
      trigger: request.trigger,
      dryRun: request.dryRun,
      requestedBy: request.requester.id,
      pageSize: request.pageSize,
      derivedAt,
    });
    if (!begun.ok) return begun;
    const runId = begun.run.id;
    const started = performance.now();
    log.info({ sweepId: runId, trigger: request.trigger, dryRun: request.dryRun, pageSize: request.pageSize }, "sweep started");

    const tally = new Map<number, TransitionTally>();
    const progress: SweepProgress = {
      examined: 0,
      conflicts: 0,
      failures: 0,
      transitions: [],
      planned: request.dryRun ? [] : null,
      cursor: null,
    };
    let error: string | null = null;
    const fail = (message: string) => {
      error ??= message;
    };

    // The lease must outlive a slow page (retries inside the client), so it is renewed on a timer
    // as well as after each page; losing it means another replica took over: stop at once.
    const lost = new AbortController();
    const renewTimer = setInterval(() => {
      store.renew(runId).then(
        (held) => {
          if (!held) lost.abort();
        },
        (err: unknown) => log.warn({ err, sweepId: runId }, "sweep: renewing the run lock failed"),
      );
    }, Math.max(250, Math.floor(options.leaseMs / 3)));
    const signal = AbortSignal.any([shutdown.signal, lost.signal]);

    // Progress is stored while licensing reconciles the next page (their databases are apart): the
    // write costs the sweep no time. The writes form one chain, each storing the progress as it is
    // when it starts, so they land in order; a page waits for the write before its own, and a
    // write that finds the run lock taken aborts the pages in flight at once.
    let records: Promise<boolean> = Promise.resolve(true);
    const record = (): Promise<boolean> =>
      store.progress(runId, { ...progress, transitions: progress.transitions.map((t) => ({ ...t })) }).then((held) => {
        if (!held) lost.abort();
        return held;
      });
    const pageDone = (): Promise<boolean> => {
      const previous = records;
      records = previous.then((held) => (held ? record() : false));
      // Awaited by the next page or at the end; until then a failure must not count as unhandled.
      records.catch(() => undefined);
      return previous;
    };

    // Pages through one range until it is done or the run stops.
    let stopping = false;
    const reconcileRange = async (range: SweepRange, ranges: readonly SweepRange[]): Promise<void> => {
      while (!stopping) {
        if (signal.aborted) return;
        let page: ReconcileResponse;
        try {
          page = await reconcile(
            create(ReconcileRequestSchema, {
              sweepId: runId,
              now: timestampFromDate(derivedAt),
              afterDeploymentId: range.cursor ?? range.after,
              upToDeploymentId: range.upTo,
              pageSize: request.pageSize,
              dryRun: request.dryRun,
              // A real run's report needs only the tallies; a dry run lists the planned rows.
              countsOnly: !request.dryRun,
            }),
            { signal },
          );
        } catch (err) {
          if (signal.aborted) return;
          progress.failures += 1;
          fail(describeReconcileError(err));
          // The other ranges finish the page they are on (so the report counts what was done) and stop.
          stopping = true;
          log.warn({ err, sweepId: runId, cursor: range.cursor ?? range.after }, "sweep: Reconcile failed, the run stops here");
          return;
        }
        progress.examined += page.examined;
        progress.conflicts += page.conflicts;
        for (const c of page.counts) {
          const from = stateFromProto(c.fromState) ?? "PENDING";
          const to = stateFromProto(c.toState) ?? "PENDING";
          const lockReason = lockReasonFromProto(c.lockReason) ?? null;
          // Keyed in the proto's enum order, so the report lists its kinds alike however the ranges' pages interleaved.
          const key = (c.fromState * 16 + c.toState) * 16 + c.lockReason;
          const entry = tally.get(key) ?? { from, to, lockReason, count: 0 };
          entry.count += c.count;
          tally.set(key, entry);
        }
        progress.transitions = [...tally].sort(([a], [b]) => a - b).map(([, t]) => t);
        if (progress.planned) {
          for (const t of page.transitions) {
            if (range.planned.length >= MAX_PLANNED) break;
            range.planned.push({
              deploymentId: t.deploymentId,
              from: stateFromProto(t.fromState) ?? "PENDING",
              to: stateFromProto(t.toState) ?? "PENDING",
              lockReason: lockReasonFromProto(t.lockReason) ?? null,
            });
          }
          // In deployment id order: the ranges are in key order.
          progress.planned = ranges.flatMap((r) => r.planned).slice(0, MAX_PLANNED);
        }
        const next = page.nextAfterDeploymentId;
        if (next) range.cursor = next;
        else range.done = true;
        progress.cursor = lowWatermark(ranges);
        // The run's last page is recorded by the final report itself (which checks the lock).
        if (ranges.every((r) => r.done)) return;
        // The previous record must have landed, with the run lock still ours, before the next page.
        let held: boolean;
        try {
          held = await pageDone();
        } catch (err) {
          stopping = true;
          throw err;
        }
        if (!held || !next) return;
      }
    };

    try {
      const { ranges, err } = await splitting;
      if (err !== undefined) {
        // Nothing reconciled yet: the run fails here (unless it was stopped, said below).
        if (!signal.aborted) {
          progress.failures += 1;
          fail(describeReconcileError(err, "SplitFleet"));
          log.warn({ err, sweepId: runId }, "sweep: SplitFleet failed, the run stops here");
        }
      }
      // Every range stops before the run is finished, even when one of them failed to record.
      const lanes = await Promise.allSettled(ranges.map((range) => reconcileRange(range, ranges)));
      const broken = lanes.find((lane) => lane.status === "rejected");
      if (broken) throw broken.reason;
      if (signal.aborted) fail(lost.signal.aborted ? "lost the run lock to another replica" : "fleet-sweep is shutting down");
      // The last record lands before the run is finished.
      if (!(await records)) fail("lost the run lock to another replica");
    } catch (err) {
      // Our own database failed while recording progress; the report says so without details.
      fail("internal error while recording the run (see fleet-sweep logs)");
      log.error({ err, sweepId: runId }, "sweep: storing progress failed");
    } finally {
      clearInterval(renewTimer);
    }

    const durationMs = Math.round(performance.now() - started);
    const finishedAt = now();
    const report = (lockHeld: boolean): FinalReport => {
      if (!lockHeld) fail("lost the run lock to another replica");
      const status = error === null ? "SUCCEEDED" : "FAILED";
      const event = newAuditEvent({
        action: "fleet.sweep",
        actor: { kind: request.requester.kind, id: request.requester.id, roles: request.requester.roles ?? [] },
        resource: { type: "sweep", id: runId },
        outcome: status === "SUCCEEDED" ? "success" : "failure",
        requestId: request.requester.requestId,
        details: {
          trigger: request.trigger,
          dryRun: request.dryRun,
          status,
          examined: progress.examined,
          transitions: Object.fromEntries(
            progress.transitions.map((t) => [`${t.from}→${t.to}${t.lockReason ? `(${t.lockReason})` : ""}`, t.count]),
          ),
          conflicts: progress.conflicts,
          failures: progress.failures,
          durationMs,
          ...(error ? { error } : {}),
        },
        now: finishedAt,
      });
      return { final: { ...progress, status, error }, event };
    };
    const run = await store.finish(runId, report);
    log.info(
      { sweepId: runId, status: run.status, examined: run.examined, transitions: progress.transitions.reduce((n, t) => n + t.count, 0), conflicts: run.conflicts, durationMs, error },
      "sweep finished",
    );
    options.onFinished?.(run);
    return { ok: true, run };
  }

  return {
    run(request) {
      const running = execute(request);
      inProgress.add(running);
      void running.finally(() => inProgress.delete(running)).catch(() => undefined);
      return running;
    },
    busy: () => inProgress.size > 0,
    async close() {
      shutdown.abort();
      await Promise.allSettled([...inProgress]);
    },
  };
}

function describeReconcileError(err: unknown, method = "Reconcile"): string {
  // A ConnectError's message is what licensing chose to tell its caller (never a stack), so it is
  // fit for the report; anything else stays in the log.
  if (err instanceof ConnectError) return `licensing ${method} failed: ${err.message}`;
  return `licensing ${method} failed (see fleet-sweep logs)`;
}

/**
 * How far the run has reconciled every deployment, for the stored progress: the end of each range
 * done, in key order, then the cursor of the first range that is not.
 */
function lowWatermark(ranges: readonly SweepRange[]): string | null {
  let mark: string | null = null;
  for (const r of ranges) {
    if (!r.done) return r.cursor ?? (r.after || mark);
    mark = r.upTo || r.cursor || mark;
  }
  return mark;
}
