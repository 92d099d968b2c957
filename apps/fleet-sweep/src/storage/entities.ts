/**
 * Fleet-sweep's tables (docs/design.md §2: sweep runs and their reports, outbox) and the run lock that
 * keeps several replicas from sweeping at the same time.
 */
import { defineEntity, p, type InferEntity } from "@mikro-orm/core";

/**
 * One sweep run and its report. Written when the run starts (RUNNING), updated after every page
 * (so a crash or a failure leaves what was done), and finished as SUCCEEDED or FAILED.
 */
export const SweepRunEntity = defineEntity({
  name: "SweepRun",
  tableName: "sweep_run",
  properties: {
    /** UUIDv7: ids sort by start time, so "newest first" is an index walk on the primary key. */
    id: p.string().length(36).primary(),
    /** `ON_DEMAND` | `SCHEDULED`. */
    trigger: p.string().length(16),
    dryRun: p.boolean(),
    /** `RUNNING` | `SUCCEEDED` | `FAILED`. */
    status: p.string().length(16),
    /** Admin subject, or `scheduler`. */
    requestedBy: p.string().length(200),
    /** The one time every page of the run is derived at. */
    derivedAt: p.datetime(),
    pageSize: p.integer(),
    startedAt: p.datetime(),
    finishedAt: p.datetime().nullable(),
    examined: p.bigint("number").default(0),
    conflicts: p.bigint("number").default(0),
    failures: p.bigint("number").default(0),
    /** JSON array of `{ from, to, lockReason, count }` (domain state names). */
    transitions: p.text(),
    /** Dry runs: JSON array of `{ deploymentId, from, to, lockReason }`, at most 10,000. */
    planned: p.text().nullable(),
    /** The last deployment id whose page completed (the keyset cursor reached). */
    cursor: p.string().length(36).nullable(),
    error: p.text().nullable(),
    updatedAt: p.datetime(),
  },
});

/** A sweep run row as the ORM hydrates it. */
export type SweepRunRow = InferEntity<typeof SweepRunEntity>;

/**
 * The run lock: one lease row per lock name. A replica holds it while `expiresAt` is in the
 * future and renews it while its run makes progress; a replica that died lets it lapse, and the
 * next one takes it over. A row rather than a PostgreSQL advisory lock so both drivers share one
 * code path, and so "who is running" can be read and named in the refusal.
 */
export const SweepLockEntity = defineEntity({
  name: "SweepLock",
  tableName: "sweep_lock",
  properties: {
    name: p.string().length(32).primary(),
    /** The sweep run holding the lock; null when free. */
    runId: p.string().length(36).nullable(),
    /** The replica holding it (host/pid/random), for operators. */
    owner: p.string().length(200).nullable(),
    acquiredAt: p.datetime().nullable(),
    expiresAt: p.datetime().nullable(),
  },
});

/** A lock row as the ORM hydrates it. */
export type SweepLockRow = InferEntity<typeof SweepLockEntity>;
