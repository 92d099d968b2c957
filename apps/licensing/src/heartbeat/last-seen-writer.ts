/**
 * The heartbeat hot path's only writer (docs/design.md §8): healthy beats do not touch the ORM, they
 * mark the deployment as seen in memory, and at most once per `flushEveryMs` (1 s) every mark
 * since the last flush is written in one statement per 2,000 boxes, the marks bound as one JSON
 * text: an `UPDATE … FROM json_each(…)` join on SQLite (in key order), an `UPDATE … FROM
 * json_array_elements(…)` join on PostgreSQL, each linear in its batch. Stream presence (which
 * replica holds which box) rides in the same flush, so a reconnect storm of 10,000 boxes costs a
 * handful of statements a second, not 10,000 transactions.
 *
 * On SQLite the flush's statements run on a worker thread with a connection of its own
 * (@lcp/persistence `createSqliteStatementThread`): better-sqlite3 runs a statement on the calling
 * thread, its disk waits included — the WAL checkpoint that a flush's COMMIT regularly triggers
 * fsyncs — so on licensing's thread every held stream's beats waited for it. Each statement is
 * autocommitted, holding the write lock a few milliseconds at a time; the app's own transactions
 * already take turns with a second writer (a read snapshot it overtook is retried).
 *
 * `last_seen_at` is a fact, but this write deliberately does not bump the deployment's version:
 * a healthy beat that changes no derived state must not make every concurrent change (revoke,
 * sweep) lose its compare-and-set. A change that read the facts just before a flush writes its
 * (≤ 1 s older) last_seen back; the box's next beat moves it forward again. Beats that change the
 * derived state (GRACE → ACTIVE) never come here: they take the synchronous change path.
 */
import { createSqliteStatementThread, type Database, type ThreadStatement } from "@lcp/persistence";
import type { Logger } from "@lcp/rpc";
import { PRESENCE_TABLE } from "../storage/presence-entity.js";

/** Options of {@link createLastSeenWriter}. */
export interface LastSeenWriterOptions {
  db: Database;
  log: Logger;
  /** The longest a mark waits before it is written. Default 1,000 ms. */
  flushEveryMs?: number;
  /** Rows per statement (PostgreSQL binds two parameters per row). Default 2,000. */
  batchSize?: number;
}

/** A held stream, as the heartbeat screen shows it. */
export interface PresenceRow {
  streamId: string;
  deploymentId: string;
  replica: string;
  connectedAt: Date;
  agentVersion: string;
}

/** The coalescing writer. */
export interface LastSeenWriter {
  /**
   * The box of `deploymentId` was seen at server time `atMs` (kept: the latest per deployment).
   * A number, not a Date: the mark lives until the next flush, and a Date is ~6× the bytes.
   */
  seen(deploymentId: string, atMs: number): void;
  /** A stream was opened (written with the next flush). */
  connected(row: PresenceRow): void;
  /** A stream ended (written with the next flush). */
  disconnected(streamId: string): void;
  /** Writes everything marked so far now (tests, shutdown). */
  flush(): Promise<void>;
  /** Statements written so far, by kind (tests prove coalescing with it; also exported as a metric). */
  readonly statements: { lastSeen: number; presence: number };
  /** Marks waiting for the next flush. */
  pending(): number;
  /** Writes what is pending and stops the timer. */
  close(): Promise<void>;
}

const DEFAULT_FLUSH_MS = 1_000;
const DEFAULT_BATCH = 2_000;

/**
 * The marks in deployment-id order. Ids are UUIDv7s minted at provisioning, so on SQLite their
 * order is the table's storage order: a batch then updates one stretch of the table, where a fleet
 * beating at random phases would have each batch of 2,000 touch nearly every page of it, and every
 * page be written to the WAL (and checkpointed) once per batch instead of once per flush; the
 * sort costs far less than it saves (`npm run bench -- last-seen`, key order against random
 * phases). PostgreSQL showed no gain (its statements do not run on this thread), so it keeps
 * the marks as they came.
 */
function inKeyOrder(marks: Map<string, number>): [string, number][] {
  return [...marks.keys()].sort().map((id) => [id, marks.get(id)!]);
}

/** Creates the writer; its timer runs only while something is pending. */
export function createLastSeenWriter(options: LastSeenWriterOptions): LastSeenWriter {
  const { db, log } = options;
  const flushEveryMs = options.flushEveryMs ?? DEFAULT_FLUSH_MS;
  const batchSize = options.batchSize ?? DEFAULT_BATCH;
  let marks = new Map<string, number>();
  let joins = new Map<string, PresenceRow>();
  let leaves = new Set<string>();
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  let closed = false;
  const statements = { lastSeen: 0, presence: 0 };

  const schedule = () => {
    if (timer || closed) return;
    timer = setTimeout(() => {
      timer = null;
      void flush().catch((err: unknown) => log.warn({ err }, "could not write heartbeat last-seen batch; retrying with the next flush"));
    }, flushEveryMs);
    timer.unref();
  };

  // SQLite: the flush's statements run on their own thread (module comment), started on the first flush.
  const thread = db.sqliteFile !== undefined ? createSqliteStatementThread(db.sqliteFile) : null;

  /** One batch of marks as a statement. */
  function lastSeenStatement(batch: [string, number][]): ThreadStatement {
    // The marks as one JSON parameter ([[id, epoch ms], …]), joined by primary key: linear in the
    // batch. (A `CASE id WHEN … THEN …` list is searched linearly for every row, quadratic in the
    // flush. On PostgreSQL a `VALUES` list of two bound parameters a mark, a Date each, cost this
    // thread and the database more than the one JSON text: `npm run bench -- last-seen`.)
    // Only forward, and only for a bound box: a flush landing just after a rebind must not make the
    // unbound deployment look seen.
    const marks = JSON.stringify(batch);
    if (db.driver === "postgresql") {
      return {
        sql:
          `update deployment as d set last_seen_at = v.ts ` +
          `from (select e ->> 0 as id, to_timestamp((e ->> 1)::bigint / 1000.0) as ts from json_array_elements(cast(? as json)) as e) as v ` +
          `where d.id = v.id and d.activated_at is not null and (d.last_seen_at is null or d.last_seen_at < v.ts)`,
        params: [marks],
      };
    }
    return {
      sql:
        `update deployment set last_seen_at = max(coalesce(deployment.last_seen_at, 0), v.ts) ` +
        `from (select value ->> 0 as id, value ->> 1 as ts from json_each(?)) as v ` +
        `where deployment.id = v.id and deployment.activated_at is not null`,
      params: [marks],
    };
  }

  /** One batch of presence changes as statements (none when there are none). */
  function presenceStatements(add: PresenceRow[], remove: string[]): ThreadStatement[] {
    const out: ThreadStatement[] = [];
    if (remove.length > 0) out.push({ sql: `delete from ${PRESENCE_TABLE} where stream_id in (${remove.map(() => "?").join(", ")})`, params: remove });
    if (add.length > 0) {
      out.push({
        sql: `insert into ${PRESENCE_TABLE} (stream_id, deployment_id, replica, connected_at, agent_version) values ${add.map(() => "(?, ?, ?, ?, ?)").join(", ")}`,
        // The thread takes plain values (SQLite keeps datetimes as epoch milliseconds).
        params: add.flatMap((r) => [r.streamId, r.deploymentId, r.replica, thread ? r.connectedAt.getTime() : r.connectedAt, r.agentVersion]),
      });
    }
    return out;
  }

  /** Runs a flush's statements: on SQLite's thread, or one after another on PostgreSQL's pool. */
  async function write(list: ThreadStatement[]): Promise<void> {
    if (thread) {
      await thread.run(list);
      return;
    }
    const conn = db.em().getConnection();
    for (const st of list) await conn.execute(st.sql, st.params, "run");
  }

  async function flushOnce(): Promise<void> {
    const batch = marks;
    const add = joins;
    const remove = leaves;
    marks = new Map();
    joins = new Map();
    leaves = new Set();
    try {
      // A stream that opened and closed within one flush never needs a row.
      for (const id of remove) if (add.delete(id)) remove.delete(id);
      const rows = [...add.values()];
      const gone = [...remove];
      const presence: ThreadStatement[] = [];
      for (let i = 0; i < Math.max(rows.length, gone.length); i += batchSize) {
        presence.push(...presenceStatements(rows.slice(i, i + batchSize), gone.slice(i, i + batchSize)));
      }
      const entries = db.driver === "sqlite" ? inKeyOrder(batch) : [...batch];
      const lastSeen: ThreadStatement[] = [];
      for (let i = 0; i < entries.length; i += batchSize) lastSeen.push(lastSeenStatement(entries.slice(i, i + batchSize)));
      await write([...presence, ...lastSeen]);
      statements.presence += presence.length;
      statements.lastSeen += lastSeen.length;
    } catch (err) {
      // Put back what was not written, unless something newer was marked meanwhile.
      for (const [id, at] of batch) {
        const newer = marks.get(id);
        if (newer === undefined || newer < at) marks.set(id, at);
      }
      for (const [id, row] of add) if (!leaves.has(id)) joins.set(id, row);
      for (const id of remove) leaves.add(id);
      throw err;
    } finally {
      if (marks.size + joins.size + leaves.size > 0) schedule();
    }
  }

  function flush(): Promise<void> {
    // One flush at a time: a slow database delays the next batch instead of running two at once.
    const next = (running ?? Promise.resolve()).then(flushOnce, flushOnce);
    const mine = next.finally(() => {
      if (running === mine) running = null;
    });
    running = mine;
    return mine;
  }

  return {
    seen(deploymentId, atMs) {
      marks.set(deploymentId, atMs);
      schedule();
    },
    connected(row) {
      joins.set(row.streamId, row);
      schedule();
    },
    disconnected(streamId) {
      leaves.add(streamId);
      schedule();
    },
    flush,
    statements,
    pending: () => marks.size + joins.size + leaves.size,
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      timer = null;
      if (marks.size + joins.size + leaves.size > 0) await flush().catch((err: unknown) => log.warn({ err }, "last heartbeat batch not written at shutdown"));
      else await running?.catch(() => undefined);
      await thread?.close();
    },
  };
}
