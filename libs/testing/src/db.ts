/**
 * `@lcp/testing/db` — real databases for storage suites: SQLite always, PostgreSQL when
 * `DATABASE_URL` is set (CONVENTIONS.md "Tests"). Every `options()` call is an isolated database.
 *
 * ```ts
 * describe.each(testDatabases())("revoke ($name)", (tdb) => {
 *   let opts: TestDatabaseOptions; let db: Database;
 *   beforeEach(async () => { opts = tdb.options("licensing"); db = await createOrm({ ...opts, entities, migrations }); });
 *   afterEach(async () => { await db.close(); await opts.cleanup(); });
 * });
 * ```
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRequire } from "node:module";
import pg from "pg";

// better-sqlite3 ships no types and @types/better-sqlite3 is not installed; this is all we use.
interface SqliteStatement { reader: boolean; all(...params: unknown[]): unknown[]; run(...params: unknown[]): unknown }
interface SqliteConnection { pragma(sql: string): unknown; prepare(sql: string): SqliteStatement; close(): void }
const Sqlite = createRequire(import.meta.url)("better-sqlite3") as new (file: string) => SqliteConnection;

/** What `createOrm` needs (spread it in), plus `cleanup()` which removes the database. */
export interface TestDatabaseOptions {
  app: string;
  /** Set only for PostgreSQL. */
  databaseUrl?: string;
  /** A fresh temporary folder (the SQLite file lives here; apps may keep other files here too). */
  dataDir: string;
  /** A fresh random schema (`t_<hex>`) for PostgreSQL. */
  schema?: string;
  /** Drops the schema / deletes the folder. Call after closing the ORM. */
  cleanup(): Promise<void>;
}

/** One driver to run a suite on, for `describe.each`. */
export interface TestDatabase {
  name: "sqlite" | "postgresql";
  /** A new isolated database for `app` on this driver. */
  options(app?: string): TestDatabaseOptions;
}

let skipNoticePrinted = false;

function freshDir(app: string): string {
  return mkdtempSync(join(tmpdir(), `lcp-${app}-`));
}

const sqlite: TestDatabase = {
  name: "sqlite",
  options(app = "test-app") {
    const dataDir = freshDir(app);
    return {
      app,
      dataDir,
      cleanup: async () => rmSync(dataDir, { recursive: true, force: true }),
    };
  },
};

function postgresql(databaseUrl: string): TestDatabase {
  return {
    name: "postgresql",
    options(app = "test-app") {
      const dataDir = freshDir(app);
      const schema = `t_${randomBytes(6).toString("hex")}`;
      return {
        app,
        databaseUrl,
        dataDir,
        schema,
        cleanup: async () => {
          rmSync(dataDir, { recursive: true, force: true });
          const client = new pg.Client({ connectionString: databaseUrl });
          await client.connect();
          try {
            await client.query(`drop schema if exists "${schema}" cascade`);
          } finally {
            await client.end();
          }
        },
      };
    },
  };
}

/**
 * The drivers a storage suite runs on: SQLite, plus PostgreSQL iff `DATABASE_URL` is set. No
 * reachability probe on purpose: a set but unreachable DATABASE_URL makes the suite's first
 * `createOrm` fail with the connection error instead of quietly skipping PostgreSQL.
 */
export function testDatabases(): TestDatabase[] {
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) {
    if (!skipNoticePrinted) {
      skipNoticePrinted = true;
      console.warn("PostgreSQL suites skipped: DATABASE_URL is not set");
    }
    return [sqlite];
  }
  return [sqlite, postgresql(databaseUrl)];
}

/**
 * Runs raw SQL against a test database behind the ORM's back: read what is really stored (at-rest
 * checks) or tamper with it. Placeholders are the driver's own (`?` for SQLite, `$1` for PostgreSQL).
 * On PostgreSQL unqualified table names resolve to the test's schema.
 */
export async function rawQuery<T = Record<string, unknown>>(options: Pick<TestDatabaseOptions, "app" | "dataDir" | "databaseUrl" | "schema">, sql: string, params: unknown[] = []): Promise<T[]> {
  if (!options.databaseUrl) {
    const file = join(options.dataDir, `${options.app}.sqlite`);
    if (!existsSync(file)) throw new Error(`rawQuery: no SQLite database at ${file}`);
    const conn = new Sqlite(file);
    try {
      conn.pragma("busy_timeout = 10000");
      const stmt = conn.prepare(sql);
      if (stmt.reader) return stmt.all(...params) as T[];
      stmt.run(...params);
      return [];
    } finally {
      conn.close();
    }
  }
  const client = new pg.Client({
    connectionString: options.databaseUrl,
    ...(options.schema ? { options: `-c search_path=${options.schema}` } : {}),
  });
  await client.connect();
  try {
    const res = await client.query(sql, params);
    return res.rows as T[];
  } finally {
    await client.end();
  }
}
