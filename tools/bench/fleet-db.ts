/**
 * What the sweep and last-seen benches share over licensing's database: a fleet seeded in one
 * statement, and the baseline's own connection, held as licensing holds its own.
 */
import { createRequire } from "node:module";
import { join } from "node:path";
import { SQLITE_CONNECTION_PRAGMAS } from "@lcp/persistence";
import { rawQuery, type TestDatabaseOptions } from "@lcp/testing/db";
import pg from "pg";

/** The id of seeded deployment `g` (1-based): UUIDv7-shaped, in key order as `g` grows, as provisioning mints them. */
export function fleetId(g: number): string {
  return `00000000-0000-7000-8000-${String(g).padStart(12, "0")}`;
}

/** Which seeded deployments were last seen earlier than the rest, and how much earlier. */
export interface Stale {
  every: number;
  ms: number;
}

/**
 * Seeds `count` activated deployments ({@link fleetId} 1..count), all stored ACTIVE and last seen
 * at `at`, every `stale.every`-th `stale.ms` earlier, in one statement.
 */
export async function seedFleet(db: TestDatabaseOptions, count: number, at: Date, stale: Stale): Promise<void> {
  const pg = Boolean(db.databaseUrl);
  const date = (d: Date) => (pg ? d.toISOString() : d.getTime());
  const cols =
    "id, name, customer, kind, subscription_status, license_id, license_expires_at, activated_at, fingerprint_hash, last_seen_at, state, state_changed_at, version, created_at, updated_at";
  const fresh = date(at);
  const early = date(new Date(at.getTime() - stale.ms));
  const expires = date(new Date(at.getTime() + 365 * 86_400_000));
  if (pg) {
    await rawQuery(
      db,
      `insert into deployment (${cols})
       select '00000000-0000-7000-8000-' || lpad(g::text, 12, '0'), 'seed-' || g, 'bench', 'ON_PREM', 'VALID', null, $3::timestamptz, $1::timestamptz,
              repeat('a', 64), case when g % ${stale.every} = 0 then $2::timestamptz else $1::timestamptz end, 'ACTIVE', $1::timestamptz, 1, $1::timestamptz, $1::timestamptz
       from generate_series(1, ${count}) g`,
      [fresh, early, expires],
    );
    return;
  }
  await rawQuery(
    db,
    `insert into deployment (${cols})
     with recursive s(g) as (select 1 union all select g + 1 from s where g < ${count})
     select '00000000-0000-7000-8000-' || substr('000000000000' || g, -12), 'seed-' || g, 'bench', 'ON_PREM', 'VALID', null, ?, ?,
            '${"a".repeat(64)}', case when g % ${stale.every} = 0 then ? else ? end, 'ACTIVE', ?, 1, ?, ?
     from s`,
    [expires, fresh, early, fresh, fresh, fresh, fresh],
  );
}

/** A connection of the baseline's own. */
export interface HeldConnection {
  run(sql: string, params: unknown[]): Promise<void>;
  /** A query's rows (placeholders are the driver's own: `?` on SQLite, `$n` on PostgreSQL). */
  all<T = Record<string, unknown>>(sql: string, params: unknown[]): Promise<T[]>;
  /** SQLite: checkpoints and empties the WAL, so the next statement pays only for what it writes. PostgreSQL: nothing. */
  resetWal(): void;
  close(): Promise<void>;
}

/**
 * The baseline's own connection to licensing's database, held for the whole run as licensing
 * holds its own: on SQLite set up with the apps' pragmas (WAL, synchronous NORMAL …). A new
 * connection per statement would start with an empty page cache and make the baseline look
 * slower than the same UPDATE run by a server (on this machine by 5 % to 70 %).
 */
export async function heldConnection(db: TestDatabaseOptions): Promise<HeldConnection> {
  if (db.databaseUrl) {
    const client = new pg.Client({ connectionString: db.databaseUrl, ...(db.schema ? { options: `-c search_path=${db.schema}` } : {}) });
    await client.connect();
    return {
      run: async (sql, params) => void (await client.query(sql, params)),
      all: async <T>(sql: string, params: unknown[]) => (await client.query(sql, params)).rows as T[],
      resetWal: () => undefined,
      close: () => client.end(),
    };
  }
  interface Connection {
    pragma(sql: string): unknown;
    prepare(sql: string): { run(...params: unknown[]): unknown; all(...params: unknown[]): unknown[] };
    close(): void;
  }
  const Sqlite = createRequire(import.meta.url)("better-sqlite3") as new (file: string) => Connection;
  const conn = new Sqlite(join(db.dataDir, `${db.app}.sqlite`));
  for (const pragma of SQLITE_CONNECTION_PRAGMAS) conn.pragma(pragma);
  const prepared = new Map<string, { all(...params: unknown[]): unknown[] }>();
  return {
    run: async (sql, params) => void conn.prepare(sql).run(...params),
    // Prepared once per text, as a server's statement cache would: the baseline is the query, not its parse.
    all: async <T>(sql: string, params: unknown[]) => {
      let stmt = prepared.get(sql);
      if (!stmt) prepared.set(sql, (stmt = conn.prepare(sql)));
      return stmt.all(...params) as T[];
    },
    resetWal: () => void conn.pragma("wal_checkpoint(TRUNCATE)"),
    close: async () => conn.close(),
  };
}
