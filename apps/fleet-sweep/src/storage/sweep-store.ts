/**
 * Sweep runs and the run lock: starting a run takes the lock (a lease row) and writes the RUNNING
 * report in one transaction, every page renews the lease and records progress, and finishing
 * releases the lock and writes the final report and its `fleet.sweep` audit event in one
 * transaction — so a report, its audit record and the lock never disagree, and a run that lost
 * the lock is told so there.
 */
import type { DeploymentState, LockReason } from "@lcp/domain";
import { recordAudit, type Database } from "@lcp/persistence";
import type { AuditEvent } from "@lcp/proto/audit/v1/audit_service_pb";
import { v7 as uuidv7 } from "uuid";
import { SweepLockEntity, SweepRunEntity, type SweepRunRow } from "./entities.js";

/** The one lock every run (scheduled or on demand, any replica) takes. */
export const SWEEP_LOCK_NAME = "sweep";

/** At most this many planned transitions are kept in a dry run's report (proto SweepRun.planned). */
export const MAX_PLANNED = 10_000;

/** `ON_DEMAND` | `SCHEDULED`, as stored. */
export type TriggerName = "ON_DEMAND" | "SCHEDULED";
/** `RUNNING` | `SUCCEEDED` | `FAILED`, as stored. */
export type StatusName = "RUNNING" | "SUCCEEDED" | "FAILED";

/** Transitions of one kind and how many there were. */
export interface TransitionTally {
  from: DeploymentState;
  to: DeploymentState;
  lockReason: LockReason | null;
  count: number;
}

/** One transition a dry run would make. */
export interface PlannedTransition {
  deploymentId: string;
  from: DeploymentState;
  to: DeploymentState;
  lockReason: LockReason | null;
}

/** What a run has done so far (the report's moving parts). */
export interface SweepProgress {
  examined: number;
  conflicts: number;
  failures: number;
  transitions: TransitionTally[];
  planned: PlannedTransition[] | null;
  cursor: string | null;
}

/** A stored run, decoded. */
export interface SweepRunView extends SweepProgress {
  id: string;
  trigger: TriggerName;
  dryRun: boolean;
  status: StatusName;
  requestedBy: string;
  derivedAt: Date;
  pageSize: number;
  startedAt: Date;
  finishedAt: Date | null;
  error: string | null;
}

/** What starting a run needs. */
export interface BeginRun {
  trigger: TriggerName;
  dryRun: boolean;
  requestedBy: string;
  pageSize: number;
  /** The time every page is derived at. */
  derivedAt: Date;
}

/** A run's last word: its final progress and status, and its `fleet.sweep` audit event. */
export interface FinalReport {
  final: SweepProgress & { status: "SUCCEEDED" | "FAILED"; error: string | null };
  event: AuditEvent;
}

/** Starting a run: it started, or another run holds the lock. */
export type BeginResult = { ok: true; run: SweepRunView } | { ok: false; runningId: string; owner: string | null };

/** Options of {@link createSweepStore}. */
export interface SweepStoreOptions {
  db: Database;
  now: () => Date;
  /** Names this replica in the lock row (for operators). */
  owner: string;
  /** How long the lock lasts without renewal; a replica that dies frees it after this. */
  leaseMs: number;
}

/** Runs and the run lock, over the app's database. */
export interface SweepStore {
  /** Creates the lock row if missing (idempotent, safe for replicas starting together). */
  ensureLockRow(): Promise<void>;
  /** Takes the lock and writes the RUNNING run; refuses when another live run holds the lock. */
  begin(input: BeginRun): Promise<BeginResult>;
  /** Renews the lease and stores progress; false when this run no longer holds the lock. */
  progress(runId: string, progress: SweepProgress): Promise<boolean>;
  /** Renews the lease only; false when this run no longer holds the lock. */
  renew(runId: string): Promise<boolean>;
  /**
   * Releases the lock and stores the final report with its audit event, in one transaction. The
   * report is built there by `report`, told whether the run still held the lock: a run whose lease
   * lapsed and was taken over must not be stored as if it had run alone.
   */
  finish(runId: string, report: (lockHeld: boolean) => FinalReport): Promise<SweepRunView>;
  get(id: string): Promise<SweepRunView | null>;
  /** Runs newest first, strictly older than `beforeId` when given. */
  list(pageSize: number, beforeId?: string): Promise<SweepRunView[]>;
}

/** Creates the store (see the module comment). */
export function createSweepStore(options: SweepStoreOptions): SweepStore {
  const { db, now, owner, leaseMs } = options;
  const expiry = (at: Date) => new Date(at.getTime() + leaseMs);

  async function renewIn(em: ReturnType<Database["em"]>, runId: string, at: Date): Promise<boolean> {
    const renewed = await em.nativeUpdate(SweepLockEntity, { name: SWEEP_LOCK_NAME, runId }, { expiresAt: expiry(at) });
    return renewed === 1;
  }

  return {
    async ensureLockRow() {
      // ON CONFLICT DO NOTHING exists on both drivers and, unlike catching a unique violation,
      // never aborts a surrounding PostgreSQL transaction.
      await db.em().execute("insert into sweep_lock (name) values (?) on conflict do nothing", [SWEEP_LOCK_NAME]);
    },

    async begin(input) {
      return db.transactional(async (em) => {
        // Write first: a no-op UPDATE takes the row lock (PostgreSQL) or the write lock (SQLite)
        // before we read, so racing replicas queue here instead of both reading "free" — on
        // SQLite two readers upgrading to writers would fail at once with "database is locked".
        await em.nativeUpdate(SweepLockEntity, { name: SWEEP_LOCK_NAME }, { name: SWEEP_LOCK_NAME });
        const at = now();
        const lock = await em.findOneOrFail(SweepLockEntity, { name: SWEEP_LOCK_NAME }, { disableIdentityMap: true });
        if (lock.runId && lock.expiresAt && lock.expiresAt.getTime() > at.getTime()) {
          return { ok: false as const, runningId: lock.runId, owner: lock.owner ?? null };
        }
        const id = uuidv7({ msecs: at.getTime() });
        // Conditional anyway, so correctness never rests on the lock above alone.
        const taken = await em.nativeUpdate(
          SweepLockEntity,
          { name: SWEEP_LOCK_NAME, $or: [{ runId: null }, { expiresAt: { $lte: at } }] },
          { runId: id, owner, acquiredAt: at, expiresAt: expiry(at) },
        );
        if (taken !== 1) {
          const holder = await em.findOneOrFail(SweepLockEntity, { name: SWEEP_LOCK_NAME }, { disableIdentityMap: true });
          return { ok: false as const, runningId: holder.runId ?? "unknown", owner: holder.owner ?? null };
        }
        if (lock.runId) {
          // The previous holder's replica stopped renewing (crashed, partitioned): its report
          // would otherwise say RUNNING for ever.
          await em.nativeUpdate(
            SweepRunEntity,
            { id: lock.runId, status: "RUNNING" },
            { status: "FAILED", error: "abandoned: the replica running it stopped renewing the run lock", finishedAt: at, updatedAt: at },
          );
        }
        const row = em.create(SweepRunEntity, {
          id,
          trigger: input.trigger,
          dryRun: input.dryRun,
          status: "RUNNING",
          requestedBy: input.requestedBy,
          derivedAt: input.derivedAt,
          pageSize: input.pageSize,
          startedAt: at,
          finishedAt: null,
          examined: 0,
          conflicts: 0,
          failures: 0,
          transitions: "[]",
          planned: input.dryRun ? "[]" : null,
          cursor: null,
          error: null,
          updatedAt: at,
        });
        em.persist(row);
        await em.flush();
        return { ok: true as const, run: viewOf(row) };
      });
    },

    async progress(runId, progress) {
      return db.transactional(async (em) => {
        const at = now();
        if (!(await renewIn(em, runId, at))) return false;
        // The planned list (up to 10,000 entries) is written once, at the end, not after every page.
        await em.nativeUpdate(SweepRunEntity, { id: runId }, { ...progressColumns(progress, false), updatedAt: at });
        return true;
      });
    },

    async renew(runId) {
      return renewIn(db.em(), runId, now());
    },

    async finish(runId, report) {
      return db.transactional(async (em) => {
        const at = now();
        const released = await em.nativeUpdate(
          SweepLockEntity,
          { name: SWEEP_LOCK_NAME, runId },
          { runId: null, owner: null, acquiredAt: null, expiresAt: null },
        );
        const { final, event } = report(released === 1);
        await em.nativeUpdate(
          SweepRunEntity,
          { id: runId },
          { ...progressColumns(final, true), status: final.status, error: final.error, finishedAt: at, updatedAt: at },
        );
        recordAudit(em, event);
        await em.flush();
        const row = await em.findOneOrFail(SweepRunEntity, { id: runId }, { disableIdentityMap: true });
        return viewOf(row);
      });
    },

    async get(id) {
      const row = await db.em().findOne(SweepRunEntity, { id }, { disableIdentityMap: true });
      return row ? viewOf(row) : null;
    },

    async list(pageSize, beforeId) {
      const rows = await db
        .em()
        .find(SweepRunEntity, beforeId ? { id: { $lt: beforeId } } : {}, { orderBy: { id: "desc" }, limit: pageSize, disableIdentityMap: true });
      return rows.map(viewOf);
    },
  };
}

function progressColumns(p: SweepProgress, withPlanned: boolean) {
  return {
    examined: p.examined,
    conflicts: p.conflicts,
    failures: p.failures,
    transitions: JSON.stringify(p.transitions),
    ...(withPlanned && p.planned ? { planned: JSON.stringify(p.planned.slice(0, MAX_PLANNED)) } : {}),
    cursor: p.cursor,
  };
}

function viewOf(row: SweepRunRow): SweepRunView {
  return {
    id: row.id,
    trigger: row.trigger as TriggerName,
    dryRun: row.dryRun,
    status: row.status as StatusName,
    requestedBy: row.requestedBy,
    derivedAt: row.derivedAt,
    pageSize: row.pageSize,
    startedAt: row.startedAt,
    finishedAt: row.finishedAt ?? null,
    examined: Number(row.examined),
    conflicts: Number(row.conflicts),
    failures: Number(row.failures),
    transitions: JSON.parse(row.transitions) as TransitionTally[],
    planned: row.planned ? (JSON.parse(row.planned) as PlannedTransition[]) : null,
    cursor: row.cursor ?? null,
    error: row.error ?? null,
  };
}
