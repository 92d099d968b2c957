import { createHash } from "node:crypto";
import { isUniqueViolation } from "@lcp/persistence";
import pg from "pg";
import { createChainLinker } from "../chain/hash.js";
import type { NormalizedEvent } from "../validate.js";
import type { AppendResult, AuditStore } from "./types.js";
import { bucketCountOf, COLUMNS, countStatement, fromRow, listQuery, pushRowValues, VERIFY_PAGE, type RawCountRow, type RawRow } from "./rows.js";
import { walkChain } from "./chain-walk.js";

const POOL_MAX = 10;
/** At most this many events go into one group-committed statement (five full batches). */
const GROUP_MAX_EVENTS = 5_000;

// One statement text for any batch size: the rows travel as one array per column and unnest
// zips them back, so there is one prepared statement instead of one per batch size.
const UNNEST = `select * from unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[])`;
const INSERT = `insert into audit_event (${COLUMNS.join(",")}) `;

/**
 * Fast path, ONE round trip, no explicit transaction: move the head from the seq/hash this
 * process last wrote to the batch's last one, and insert the rows only if that update matched.
 * The UPDATE takes the head's row lock; if another replica moved the head meanwhile, PostgreSQL
 * re-checks the WHERE after the wait, the update matches nothing and nothing is inserted.
 */
const FAST_APPEND =
  `with head as (update audit_chain_head set seq = $17, hash = $18 where id = 1 and seq = $19 and hash = $20 returning 1) ` +
  `${INSERT}${UNNEST} where exists (select 1 from head)`;
/** Slow path, inside the locked transaction: insert and move the head unconditionally. */
const LOCKED_APPEND = `with head as (update audit_chain_head set seq = $17, hash = $18 where id = 1 returning 1) ${INSERT}${UNNEST}`;

/**
 * The store on PostgreSQL: its own pool to the app's schema (search_path), statements prepared
 * per connection by name.
 *
 * Several replicas share one chain, so every append is serialised on the chain-head row. The
 * common case costs one round trip: this process remembers the head it last wrote, appends
 * are queued in-process (so they never race each other; what queued up while one statement ran
 * goes next as one group), and {@link FAST_APPEND} extends the chain from the remembered head
 * in a single statement. Each batch is still all-or-nothing: a group commits or fails whole.
 * When another replica has moved the head
 * (or the batch holds an id already stored: a replay), the statement changes
 * nothing and the append is redone the careful way: `BEGIN`, `SELECT … FOR UPDATE` of the head,
 * the duplicate check under the lock, insert, `COMMIT`.
 */
export function createPostgresAuditStore(connectionString: string, schema: string): AuditStore {
  const pool = new pg.Pool({ connectionString, max: POOL_MAX, options: `-c search_path=${schema}` });
  // An idle client losing its connection (database restart) must not crash the process; the
  // next query gets a fresh connection.
  pool.on("error", () => undefined);

  const query = <T>(client: pg.Pool | pg.PoolClient, text: string, values: unknown[] = []) =>
    client.query<T & pg.QueryResultRow>({ name: statementName(text), text, values });
  const rows = async <T>(client: pg.Pool | pg.PoolClient, text: string, values: unknown[] = []) => (await query<T>(client, text, values)).rows;
  const readHead = async (client: pg.Pool | pg.PoolClient = pool) => {
    const [row] = await rows<{ seq: string; hash: string }>(client, "select seq, hash from audit_chain_head where id = 1");
    if (!row) throw new Error("audit_chain_head has no row: the database was not migrated");
    return { seq: Number(row.seq), hash: row.hash };
  };
  const storedIds = async (client: pg.Pool | pg.PoolClient, ids: string[]) =>
    new Set((await rows<{ id: string }>(client, "select id from audit_event where id = any($1::text[])", [ids])).map((r) => r.id));

  /** Chains the parts' events after `head`, in order, each with its producer: the 16 column arrays (as literals) and the new head. */
  const chain = (parts: readonly { producer: string; events: readonly NormalizedEvent[]; recordedAt: Date }[], head: { seq: number; hash: string }) => {
    const linker = createChainLinker(head);
    const values: unknown[] = [];
    for (const { producer, events, recordedAt } of parts) {
      const at = recordedAt.toISOString();
      for (const e of events) {
        const occurredAt = e.occurredAt.toISOString();
        pushRowValues(values, e, linker.next(e, producer, occurredAt), producer, occurredAt, at);
      }
    }
    return { columns: arrayLiterals(values), head: linker.head() };
  };

  // The head this process last wrote (or read); undefined until the first append.
  let knownHead: { seq: number; hash: string } | undefined;
  // Appends waiting for their turn. One at a time goes to the database, and whatever queued up
  // meanwhile goes next as ONE statement (group commit): under load, many producers' batches
  // share one round trip and one WAL flush, and this replica's appends never race each other.
  interface Pending {
    producer: string;
    fresh: NormalizedEvent[];
    total: number;
    recordedAt: Date;
    resolve(result: AppendResult): void;
    reject(err: unknown): void;
  }
  const pending: Pending[] = [];
  let draining = false;

  const drain = async () => {
    draining = true;
    try {
      while (pending.length > 0) {
        const group: Pending[] = [];
        let rows = 0;
        while (pending.length > 0 && (group.length === 0 || rows + pending[0]!.fresh.length <= GROUP_MAX_EVENTS)) {
          const next = pending.shift()!;
          rows += next.fresh.length;
          group.push(next);
        }
        await commitGroup(group);
      }
    } finally {
      draining = false;
    }
  };

  async function commitGroup(group: Pending[]): Promise<void> {
    const head = knownHead;
    if (head) {
      // Two producers may race the same id (a relay redelivering to this replica): first wins.
      const seen = new Set<string>();
      const parts = group.map((p) => ({
        producer: p.producer,
        recordedAt: p.recordedAt,
        events: p.fresh.filter((e) => !seen.has(e.id) && (seen.add(e.id), true)),
      }));
      const next = chain(parts, head);
      try {
        const res = await query(pool, FAST_APPEND, [...next.columns, next.head.seq, next.head.hash, head.seq, head.hash]);
        if (res.rowCount === seen.size) {
          knownHead = next.head;
          group.forEach((p, i) => p.resolve({ appended: parts[i]!.events.length, duplicates: p.total - parts[i]!.events.length, headSeq: next.head.seq }));
          return;
        }
      } catch (err) {
        // An id already stored (a replay, or another replica's append): redo them under the
        // lock. Any other failure is redone one by one too, so one batch can never fail another
        // producer's batch that merely shared its statement; each then gets its own answer.
        if (!isUniqueViolation(err) && group.length === 1) {
          group[0]!.reject(err);
          return;
        }
      }
    }
    // Another replica moved the head (or this is the first append): one by one, the careful way.
    for (const p of group) {
      try {
        p.resolve(await lockedAppend(p.producer, p.fresh, p.total, p.recordedAt));
      } catch (err) {
        p.reject(err);
      }
    }
  }

  /** `candidates`: the batch without repeats of an id; `total`: the batch's size, repeats included. */
  async function lockedAppend(producer: string, candidates: readonly NormalizedEvent[], total: number, recordedAt: Date): Promise<AppendResult> {
    const client = await pool.connect();
    let broken = false;
    try {
      // A simple-protocol multi-statement: BEGIN and the lock in one round trip.
      const res = (await client.query("begin; select seq, hash from audit_chain_head where id = 1 for update")) as unknown as pg.QueryResult[];
      const row = res[1]?.rows[0] as { seq: string; hash: string } | undefined;
      if (!row) throw new Error("audit_chain_head has no row: the database was not migrated");
      const head = { seq: Number(row.seq), hash: row.hash };
      // Under the lock, so two replicas never both chain one event.
      const stored = await storedIds(client, candidates.map((e) => e.id));
      const fresh = candidates.filter((e) => !stored.has(e.id));
      if (fresh.length > 0) {
        const next = chain([{ producer, events: fresh, recordedAt }], head);
        await query(client, LOCKED_APPEND, [...next.columns, next.head.seq, next.head.hash]);
        await client.query("commit");
        knownHead = next.head;
      } else {
        await client.query("commit");
        knownHead = head;
      }
      return { appended: fresh.length, duplicates: total - fresh.length, headSeq: knownHead.seq };
    } catch (err) {
      await client.query("rollback").catch(() => {
        broken = true;
      });
      throw err;
    } finally {
      // A connection that could not even roll back is dropped from the pool, not reused.
      client.release(broken);
    }
  }

  let closed: Promise<void> | undefined;

  return {
    head: () => readHead(),

    async append(producer, events, recordedAt) {
      if (events.length === 0) return { appended: 0, duplicates: 0, headSeq: (await readHead()).seq };
      const unique = new Map<string, NormalizedEvent>();
      for (const e of events) if (!unique.has(e.id)) unique.set(e.id, e);
      // No duplicate check against the table here: replays are rare (a relay whose answer was
      // lost), so the fast path lets the unique index find them — its statement then fails
      // whole and the batch is redone under the lock, where stored ids are counted as duplicates.
      const fresh = [...unique.values()];
      return new Promise<AppendResult>((resolve, reject) => {
        pending.push({ producer, fresh, total: events.length, recordedAt, resolve, reject });
        if (!draining) void drain();
      });
    },

    async list(filter, beforeSeq, limit) {
      const { sql, params } = listQuery(filter, beforeSeq, limit, (i) => `$${i}`, (d) => d);
      return (await rows<RawRow>(pool, sql, params)).map(fromRow);
    },

    async count(query) {
      const { sql, params } = countStatement(query, "postgresql");
      return (await rows<RawCountRow>(pool, sql, params)).map(bucketCountOf);
    },

    verify: (fromSeq, toSeq) =>
      walkChain(
        {
          head: () => readHead(),
          hashOf: async (seq) => (await rows<{ hash: string }>(pool, "select hash from audit_event where seq = $1", [seq]))[0]?.hash,
          page: async (from, to, limit) =>
            (await rows<RawRow>(pool, `select ${COLUMNS.join(",")} from audit_event where seq >= $1 and seq <= $2 order by seq limit $3`, [from, to, limit])).map(fromRow),
        },
        fromSeq,
        toSeq,
        VERIFY_PAGE,
      ),

    close() {
      closed ??= pool.end();
      return closed;
    },
  };
}

// Inside a double-quoted array element only `"` and `\\` need escaping (NUL is refused by
// validation, and PostgreSQL text cannot hold it anyway).
const NEEDS_ESCAPE = /["\\]/;
const ESCAPES = /["\\]/g;
// In JSON text, any escape but \" and \\ (a control character, a lone surrogate) means something
// else in an array literal, where a backslash only quotes the next character.
const JSON_ONLY_ESCAPE = /\\[^"\\]/;

/**
 * Row-major `values` ({@link COLUMNS} per row) as one PostgreSQL array literal per column, every
 * string element quoted. pg's own array serialisation ran two regex replaces on every element,
 * a tenth of the whole Append's CPU in the profile. `JSON.stringify` of a column writes exactly
 * the array literal's quoting (`"` around strings, `\"` and `\\` inside) in one native call, so
 * it only needs `[…]` turned into `{…}`; a column whose text holds any other JSON escape is
 * quoted by hand instead.
 */
function arrayLiterals(values: readonly unknown[]): string[] {
  const width = COLUMNS.length;
  const columns: string[] = [];
  for (let c = 0; c < width; c++) {
    const column: unknown[] = [];
    for (let i = c; i < values.length; i += width) column.push(values[i]);
    const json = JSON.stringify(column);
    columns.push(JSON_ONLY_ESCAPE.test(json) ? quotedLiteral(column) : `{${json.slice(1, -1)}}`);
  }
  return columns;
}

function quotedLiteral(column: readonly unknown[]): string {
  return `{${column.map((value) => {
    const v = String(value);
    return `"${NEEDS_ESCAPE.test(v) ? v.replace(ESCAPES, "\\$&") : v}"`;
  }).join(",")}}`;
}

// pg prepares a named statement once per connection; the name must be unique per text.
const names = new Map<string, string>();
function statementName(text: string): string {
  let name = names.get(text);
  if (!name) {
    name = `audit_${createHash("sha1").update(text).digest("hex").slice(0, 16)}`;
    if (names.size < 1_000) names.set(text, name);
  }
  return name;
}
