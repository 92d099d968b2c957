/**
 * One sweep run (DESIGN.md §9): take the run lock, page through the whole fleet with licensing's
 * `Reconcile` (keyset cursor) at ONE `now`, tally the report, store progress after every page, and
 * finish with the report and its `fleet.sweep` audit event. A failure part-way stores the run as
 * FAILED with what was done; the next run simply sweeps again — pages already reconciled have
 * nothing left to change, so nothing is applied twice.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { DeploymentState, LockReason } from "@lcp/domain";
import { newAuditEvent } from "@lcp/persistence";
import { ReconcileRequestSchema, type ReconcileRequest, type ReconcileResponse } from "@lcp/proto/licensing/v1/reconcile_service_pb";
import { DeploymentState as ProtoState, LockReason as ProtoLockReason } from "@lcp/proto/licensing/v1/types_pb";
import type { Logger } from "@lcp/rpc";
import {
  MAX_PLANNED,
  type PlannedTransition,
  type SweepProgress,
  type SweepRunView,
  type SweepStore,
  type TransitionTally,
  type TriggerName,
} from "../storage/sweep-store.js";

/** Calls licensing's `ReconcileService.Reconcile` (the typed client's method, or a stand-in). */
export type ReconcileFn = (request: ReconcileRequest, options: { signal: AbortSignal }) => Promise<ReconcileResponse>;

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

const STATE_NAMES: Record<number, DeploymentState> = {
  [ProtoState.PENDING]: "PENDING",
  [ProtoState.ACTIVE]: "ACTIVE",
  [ProtoState.GRACE]: "GRACE",
  [ProtoState.SUSPENDED]: "SUSPENDED",
  [ProtoState.LOCKED]: "LOCKED",
};
const LOCK_REASON_NAMES: Record<number, LockReason> = {
  [ProtoLockReason.REVOKED]: "REVOKED",
  [ProtoLockReason.EXPIRED]: "EXPIRED",
  [ProtoLockReason.OFFLINE]: "OFFLINE",
};

/** Creates the runner (see the module comment). */
export function createSweepRunner(options: SweepRunnerOptions): SweepRunner {
  const { store, reconcile, now, log } = options;
  const shutdown = new AbortController();
  const inProgress = new Set<Promise<unknown>>();

  async function execute(request: RunRequest): Promise<RunOutcome> {
    if (shutdown.signal.aborted) throw new ConnectError("fleet-sweep is shutting down", Code.Unavailable);
    const derivedAt = now();
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

    const tally = new Map<string, TransitionTally>();
    const progress: SweepProgress = {
      examined: 0,
      conflicts: 0,
      failures: 0,
      transitions: [],
      planned: request.dryRun ? [] : null,
      cursor: null,
    };
    let error: string | null = null;

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

    // A page's progress is stored while licensing reconciles the next one (their databases are
    // apart): the write costs the sweep no time. A lost run lock aborts the page in flight at once.
    let recording: Promise<boolean> | null = null;
    const record = (): Promise<boolean> => {
      const stored = store.progress(runId, { ...progress, transitions: progress.transitions.map((t) => ({ ...t })) }).then((held) => {
        if (!held) lost.abort();
        return held;
      });
      // Awaited below; until then a failure must not count as unhandled.
      stored.catch(() => undefined);
      return stored;
    };
    try {
      for (;;) {
        if (signal.aborted) {
          error = lost.signal.aborted ? "lost the run lock to another replica" : "fleet-sweep is shutting down";
          break;
        }
        let page: ReconcileResponse;
        try {
          page = await reconcile(
            create(ReconcileRequestSchema, {
              sweepId: runId,
              now: timestampFromDate(derivedAt),
              afterDeploymentId: progress.cursor ?? "",
              pageSize: request.pageSize,
              dryRun: request.dryRun,
              // A real run's report needs only the tallies; a dry run lists the planned rows.
              countsOnly: !request.dryRun,
            }),
            { signal },
          );
        } catch (err) {
          progress.failures += 1;
          error = describeReconcileError(err, signal, lost.signal);
          log.warn({ err, sweepId: runId, cursor: progress.cursor }, "sweep: Reconcile failed, the run stops here");
          break;
        }
        progress.examined += page.examined;
        progress.conflicts += page.conflicts;
        for (const c of page.counts) {
          const from = STATE_NAMES[c.fromState] ?? "PENDING";
          const to = STATE_NAMES[c.toState] ?? "PENDING";
          const lockReason = LOCK_REASON_NAMES[c.lockReason] ?? null;
          const key = `${from}>${to}>${lockReason ?? ""}`;
          const entry = tally.get(key) ?? { from, to, lockReason, count: 0 };
          entry.count += c.count;
          tally.set(key, entry);
        }
        if (progress.planned) {
          for (const t of page.transitions) {
            if (progress.planned.length >= MAX_PLANNED) break;
            const planned: PlannedTransition = {
              deploymentId: t.deploymentId,
              from: STATE_NAMES[t.fromState] ?? "PENDING",
              to: STATE_NAMES[t.toState] ?? "PENDING",
              lockReason: LOCK_REASON_NAMES[t.lockReason] ?? null,
            };
            progress.planned.push(planned);
          }
        }
        progress.transitions = [...tally.values()];
        const next = page.nextAfterDeploymentId;
        if (next) progress.cursor = next;
        // The previous page's record must have landed, with the run lock still ours, before the next.
        if (recording && !(await recording)) continue;
        recording = record();
        if (!next) break;
      }
      // The last record (or the one in flight when a page failed) lands before the run is finished.
      if (recording && !(await recording) && error === null) error = "lost the run lock to another replica";
    } catch (err) {
      // Our own database failed while recording progress; the report says so without details.
      error = "internal error while recording the run (see fleet-sweep logs)";
      log.error({ err, sweepId: runId }, "sweep: storing progress failed");
    } finally {
      clearInterval(renewTimer);
    }

    const status = error === null ? "SUCCEEDED" : "FAILED";
    const durationMs = Math.round(performance.now() - started);
    const finishedAt = now();
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
    const run = await store.finish(runId, { ...progress, status, error }, event);
    log.info(
      { sweepId: runId, status, examined: run.examined, transitions: progress.transitions.reduce((n, t) => n + t.count, 0), conflicts: run.conflicts, durationMs, error },
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

function describeReconcileError(err: unknown, signal: AbortSignal, lost: AbortSignal): string {
  if (signal.aborted) return lost.aborted ? "lost the run lock to another replica" : "fleet-sweep is shutting down";
  // A ConnectError's message is what licensing chose to tell its caller (never a stack), so it is
  // fit for the report; anything else stays in the log.
  if (err instanceof ConnectError) return `licensing Reconcile failed: ${err.message}`;
  return "licensing Reconcile failed (see fleet-sweep logs)";
}
