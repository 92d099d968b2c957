import type { AuditEvent } from "@lcp/proto/audit/v1/audit_service_pb";
import type { EntityManager } from "@mikro-orm/knex";
import type { Database, PersistenceLogger } from "./orm.js";
import { inDeliverySpan } from "./outbox-trace.js";
import { quarantinedEventCount } from "./quarantine.js";
import { EVENT_RUN_PREFIX, OutboxEvent, newAuditEvent, outboxDeliveryEvents, recordAudit, type OutboxEventRow } from "./outbox.js";

/** A source of time; the relay stamps `delivered_at`, computes ages and retention with it. */
export interface RelayClock {
  now(): Date | number;
}

/** Options for {@link createOutboxRelay}. */
export interface OutboxRelayOptions {
  db: Database;
  /** Sends a batch (in seq order) to the audit service's `Append`; resolves only once it is stored. Details come as `detailsJson` ({@link outboxDeliveryEvent}). */
  deliver: (events: AuditEvent[]) => Promise<void>;
  /**
   * Whether a `deliver` rejection means the audit service refused the batch as permanently
   * invalid (Connect InvalidArgument: `@lcp/rpc`'s `isPermanentAuditRefusal`), as opposed to
   * being unreachable or busy. Such a batch is split to find the refused events, which are
   * quarantined (kept, skipped, announced) so they never block the events behind them.
   * Default: no rejection is permanent, every failure is retried.
   */
  isPermanentRefusal?: (err: unknown) => boolean;
  /** Events per `deliver` call (Append accepts at most 1,000), and outbox rows read per claim. Default 100. */
  batchSize?: number;
  /** A claim stops after the row that brings it to this many events (rows may hold runs of events). Default 50 × batchSize. */
  maxEventsPerClaim?: number;
  /** How often to look for new events when not notified. Default 200 ms. */
  pollIntervalMs?: number;
  /** Jittered exponential backoff while `deliver` rejects. Defaults 100 ms → 30 s. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Delivered rows older than this are purged. Default 7 days. */
  retentionMs?: number;
  /** At most one purge per this interval. Default 60 s. */
  purgeIntervalMs?: number;
  logger?: PersistenceLogger;
  clock?: RelayClock;
  /** The app whose outbox this is, named on its delivery trace spans (outbox-trace.ts). */
  name?: string;
}

/** Outbox depth, for metrics and health (quarantined rows are not pending: see `quarantinedEventCount`). */
export interface OutboxStats {
  pending: number;
  /** Age of the oldest undelivered event (0 when none). */
  oldestPendingAgeMs: number;
}

/** A running (or stoppable) outbox relay. */
export interface OutboxRelay {
  /** Starts the background loop. Idempotent. */
  start(): void;
  /** Stops the loop; resolves after an in-flight batch has finished (delivered and marked, or failed and recorded). */
  stop(): Promise<void>;
  /** Delivers everything pending now, batch after batch; resolves with the number delivered, rejects if `deliver` does. */
  flushNow(): Promise<number>;
  stats(): Promise<OutboxStats>;
  /** A change with an audit event was committed: look now instead of at the next poll (ignored while backing off). */
  notify(): void;
}

type BatchResult = { delivered: number; more: boolean; error?: unknown };
type Refusal = { event: AuditEvent; reason: string };

/** The action of the alarm event a quarantined outbox row raises (its resource is the refused event's id). */
export const QUARANTINE_ACTION = "audit.event_quarantined";

const LOCK_PREFIX = "lcp:outbox:";
const MAX_ERROR_LENGTH = 2_000;

/**
 * Delivers an app's outbox to the audit service: pending events in seq order, in batches, at least
 * once (Append is idempotent by event id). A row is marked delivered only after `deliver`
 * resolved; while `deliver` rejects the relay backs off (jittered exponential) and records
 * `attempts`/`last_error` on the batch. One relay never has two batches in flight.
 *
 * Several replicas of one app on PostgreSQL: each batch runs in a transaction that first takes
 * `pg_try_advisory_xact_lock(hashtext('lcp:outbox:<schema>'))`; a replica that does not get it skips
 * that round. So at most one batch of an app is in flight across all replicas, and the events go
 * out in seq order (SKIP LOCKED would let a second replica overtake the first with later events).
 * On SQLite (one process per file) no transaction is held while `deliver` runs, because the single
 * connection would block every other query of the app meanwhile.
 *
 * Order caveat: seq is assigned at insert, visibility at commit; an event whose transaction commits
 * after a later-numbered one was already delivered goes out after it.
 */
export function createOutboxRelay(options: OutboxRelayOptions): OutboxRelay {
  const { db, deliver, logger } = options;
  const isPermanentRefusal = options.isPermanentRefusal ?? (() => false);
  const batchSize = options.batchSize ?? 100;
  const maxEventsPerClaim = options.maxEventsPerClaim ?? batchSize * 50;
  const pollIntervalMs = options.pollIntervalMs ?? 200;
  const initialMs = options.backoff?.initialMs ?? 100;
  const maxMs = options.backoff?.maxMs ?? 30_000;
  const retentionMs = options.retentionMs ?? 7 * 24 * 3600_000;
  const purgeIntervalMs = options.purgeIntervalMs ?? 60_000;
  const nowMs = () => {
    const t = options.clock?.now() ?? Date.now();
    return typeof t === "number" ? t : t.getTime();
  };
  const lockKey = `${LOCK_PREFIX}${db.schema ?? "sqlite"}`;

  // Serialises the loop's batches with flushNow/purge, so one relay never has two batches in flight.
  let queue: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = queue.then(fn, fn);
    queue = run.catch(() => undefined);
    return run;
  };

  async function claimAndDeliver(em: EntityManager): Promise<BatchResult> {
    const rows: OutboxEventRow[] = await em.find(OutboxEvent, { deliveredAt: null, quarantinedAt: null }, { orderBy: { seq: "asc" }, limit: batchSize });
    if (rows.length === 0) return { delivered: 0, more: false };
    // A row may hold a run of thousands of events (outbox.ts `EventRun`): its events go out in
    // order, `batchSize` per `deliver`, and the row is marked delivered once its last one is
    // stored. A failure part-way leaves it undelivered, so the whole run is sent again with the
    // same ids — Append stores each id once. A claim stops after the row that reaches
    // `maxEventsPerClaim`, so one claim (a transaction, on PostgreSQL) stays short.
    let error: unknown;
    let delivered = 0;
    let done = 0;
    let chunk: Array<{ event: AuditEvent; row: number }> = [];
    let chunkEnds = 0;
    // Rows (by index) holding an event the audit service refused for good, with the first refusal.
    const refused = new Map<number, Refusal>();
    const send = async () => {
      let stored = chunk.length;
      try {
        const events = chunk.map((c) => c.event);
        await inDeliverySpan(options.name, chunk.map((c) => rows[c.row]!.traceparent), () => deliver(events));
      } catch (err) {
        if (!isPermanentRefusal(err)) throw err;
        // Append stores all of a batch or none of it: one event at a time finds the ones it
        // refuses, and everything else still goes in, in order. Transient failures still throw.
        for (const { event, row } of chunk) {
          try {
            await inDeliverySpan(options.name, [rows[row]!.traceparent], () => deliver([event]));
          } catch (single) {
            if (!isPermanentRefusal(single)) throw single;
            stored -= 1;
            if (!refused.has(row)) refused.set(row, { event, reason: describe(single) });
          }
        }
      }
      delivered += stored;
      chunk = [];
      done = chunkEnds;
    };
    try {
      for (const [i, row] of rows.entries()) {
        let events: AuditEvent[];
        try {
          events = outboxDeliveryEvents(row);
        } catch (err) {
          // A row that does not parse is never skipped (its events would be lost from the log):
          // the rows before it still go out, it and those after it wait with the error recorded.
          error = err;
          break;
        }
        for (const event of events) {
          chunk.push({ event, row: i });
          if (chunk.length === batchSize) await send();
        }
        chunkEnds = i + 1;
        if (chunk.length === 0) done = chunkEnds;
        if (delivered + chunk.length >= maxEventsPerClaim) break;
      }
      if (chunk.length > 0) await send();
    } catch (err) {
      error ??= err;
    }
    const now = new Date(nowMs());
    let quarantined = 0;
    for (const [i, row] of rows.entries()) {
      const refusal = refused.get(i);
      if (i < done && refusal) {
        quarantine(em, row, refusal, now);
        quarantined += 1;
      } else if (i < done) {
        row.deliveredAt = now;
      } else if (error !== undefined) {
        row.attempts += 1;
        row.lastError = describe(error).slice(0, MAX_ERROR_LENGTH);
      }
    }
    await em.flush();
    if (error !== undefined) return { delivered, more: true, error };
    // The alarm events just written are behind this claim: look again now, not at the next poll.
    return { delivered, more: done < rows.length || rows.length === batchSize || quarantined > 0 };
  }

  /**
   * Sets a refused row aside for good: kept with the refusal, skipped from now on, logged, and
   * announced by an `audit.event_quarantined` event (sanitised like every event, so the alarm
   * itself cannot be refused). A refused alarm raises no alarm of its own, so it cannot loop.
   */
  function quarantine(em: EntityManager, row: OutboxEventRow, refusal: Refusal, now: Date): void {
    row.quarantinedAt = now;
    row.attempts += 1;
    row.lastError = refusal.reason.slice(0, MAX_ERROR_LENGTH);
    logger?.error(
      { seq: row.seq, eventId: refusal.event.id, action: refusal.event.action, reason: row.lastError },
      "outbox: the audit service refused an event as invalid; it is quarantined and delivery goes on",
    );
    if (refusal.event.action === QUARANTINE_ACTION) return;
    recordAudit(
      em,
      newAuditEvent({
        action: QUARANTINE_ACTION,
        actor: { kind: "system", id: "outbox-relay" },
        resource: { type: "audit_event", id: refusal.event.id },
        outcome: "failure",
        details: { seq: row.seq, action: refusal.event.action, reason: row.lastError },
        now,
      }),
    );
  }

  function runBatch(): Promise<BatchResult> {
    return exclusive(async () => {
      if (db.driver === "sqlite") return claimAndDeliver(db.em());
      return db.transactional(async (em) => {
        const [res] = await em.execute<Array<{ locked: boolean }>>("select pg_try_advisory_xact_lock(hashtext(?)) as locked", [lockKey]);
        // Another replica is delivering this app's outbox; it will get to these events too.
        if (!res?.locked) return { delivered: 0, more: false };
        return claimAndDeliver(em);
      });
    });
  }

  let lastPurge = 0;
  async function maybePurge(): Promise<void> {
    const now = nowMs();
    if (now - lastPurge < purgeIntervalMs) return;
    lastPurge = now;
    await exclusive(async () => {
      const purged = await db.em().nativeDelete(OutboxEvent, { deliveredAt: { $lt: new Date(now - retentionMs) } });
      if (purged > 0) logger?.debug?.({ purged }, "outbox: purged delivered events past retention");
    });
  }

  let running = false;
  let loop: Promise<void> | undefined;
  let failures = 0;
  let wake: (() => void) | undefined;
  let wakeable = true;
  // Set by notify() while a batch is running: that batch may have looked before the change
  // committed, so the loop must look again instead of sleeping a whole poll interval.
  let notified = false;

  const sleep = (ms: number, interruptible: boolean) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      wakeable = interruptible;
      wake = done;
      function done() {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      }
    });

  function backoffDelay(): number {
    const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(failures - 1, 30));
    // "Equal jitter": half fixed so it still backs off, half random so replicas and apps that
    // failed together do not retry in lockstep.
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }

  async function run(): Promise<void> {
    while (running) {
      let delay = pollIntervalMs;
      let interruptible = true;
      notified = false;
      try {
        const result = await runBatch();
        if (result.error !== undefined) throw result.error;
        if (failures > 0) logger?.info({ afterFailures: failures }, "outbox: delivery recovered");
        failures = 0;
        if (result.more) delay = 0;
        await maybePurge();
      } catch (err) {
        failures += 1;
        delay = backoffDelay();
        interruptible = false;
        logger?.warn({ err: describe(err), failures, retryInMs: Math.round(delay) }, "outbox: delivery failed, backing off");
      }
      if (!running) break;
      if (interruptible && notified) delay = 0;
      if (delay > 0) await sleep(delay, interruptible);
    }
  }

  return {
    start() {
      if (running) return;
      running = true;
      loop = run();
    },
    async stop() {
      running = false;
      wake?.();
      await loop;
      loop = undefined;
    },
    async flushNow() {
      let total = 0;
      for (;;) {
        const result = await runBatch();
        if (result.error !== undefined) throw result.error;
        total += result.delivered;
        // `more` false also when another replica holds the lock: it is delivering the rest.
        if (!result.more) return total;
      }
    },
    stats() {
      return outboxStats(db, nowMs());
    },
    notify() {
      notified = true;
      if (wakeable) wake?.();
    },
  };
}

/**
 * How far behind the outbox is: undelivered events and the age of the oldest. Read from the
 * table, so it also answers for an app that runs no relay (no AUDIT_URL) or whose relay is
 * on another replica.
 */
export async function outboxStats(db: Database, nowMs: number = Date.now()): Promise<OutboxStats> {
  const em = db.em();
  // Events, not rows: a run row counts as the events it holds (its count leads the payload).
  const count =
    db.driver === "postgresql" ? "cast(split_part(payload, ':', 2) as integer)" : `cast(substr(payload, ${EVENT_RUN_PREFIX.length + 1}) as integer)`;
  const [row] = await em
    .getConnection()
    .execute<Array<{ pending: number | string | null }>>(
      `select sum(case when payload like ? then ${count} else 1 end) as pending from outbox_event where delivered_at is null and quarantined_at is null`,
      [`${EVENT_RUN_PREFIX}%`],
    );
  const pending = Number(row?.pending ?? 0);
  if (pending === 0) return { pending, oldestPendingAgeMs: 0 };
  const oldest = await em.findOne(OutboxEvent, { deliveredAt: null, quarantinedAt: null }, { orderBy: { occurredAt: "asc" }, fields: ["occurredAt"] });
  const age = oldest ? nowMs - oldest.occurredAt.getTime() : 0;
  return { pending, oldestPendingAgeMs: Math.max(0, age) };
}

/** The part of a metrics registry this package needs (`@lcp/rpc`'s RpcMetrics fits). */
export interface GaugeFactory {
  gauge(name: string, help: string, labelNames: readonly string[], collect: (this: { set(value: number): void }) => Promise<void>): unknown;
}

/**
 * Exposes `outbox_depth` and `outbox_oldest_pending_age_seconds` (docs/design.md §10), under the
 * app's prefix (`licensing_outbox_depth`): an outbox that only grows means audit is unreachable,
 * which is worth an alert long before anything is lost; and `outbox_quarantined_events`, rows
 * audit refused as invalid, each worth a look.
 */
export function registerOutboxMetrics(metrics: GaugeFactory, db: Database): void {
  // One query per scrape serves both gauges: each collect awaits the same promise.
  let inFlight: Promise<OutboxStats> | undefined;
  const read = () => {
    inFlight ??= outboxStats(db).finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  };
  metrics.gauge("outbox_depth", "Audit events written but not yet delivered to the audit service.", [], async function () {
    this.set((await read()).pending);
  });
  metrics.gauge("outbox_oldest_pending_age_seconds", "Age of the oldest undelivered audit event.", [], async function () {
    this.set((await read()).oldestPendingAgeMs / 1000);
  });
  metrics.gauge(
    "outbox_quarantined_events",
    "Outbox rows the audit service refused as invalid, set aside (kept, not delivered); list them with ListQuarantinedEvents.",
    [],
    async function () {
      this.set(await quarantinedEventCount(db));
    },
  );
}

function describe(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}
