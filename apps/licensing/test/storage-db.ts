/**
 * The storage suites' database: a migrated licensing database on one driver per test, closed and
 * removed after it. Call inside the `describe.each(testDatabases())` block.
 */
import type { Database } from "@lcp/persistence";
import { rawQuery, type TestDatabase, type TestDatabaseOptions } from "@lcp/testing/db";
import { afterEach } from "vitest";
import { openLicensingDatabase } from "./bench-support.js";

/** An open licensing database, and raw SQL on it (another connection: what a reader sees). */
export interface StorageDb {
  db: Database;
  opts: TestDatabaseOptions;
  pg: boolean;
  sql<T = Record<string, unknown>>(q: string, params?: unknown[]): Promise<T[]>;
}

/** Registers the cleanup; `open()` creates this test's database. */
export function licensingDatabase(tdb: TestDatabase): { open(): Promise<StorageDb> } {
  let db: Database | undefined;
  let opts: TestDatabaseOptions | undefined;
  afterEach(async () => {
    await db?.close();
    await opts?.cleanup();
    db = undefined;
    opts = undefined;
  });
  return {
    async open() {
      const o = (opts = tdb.options("licensing"));
      db = await openLicensingDatabase(o);
      return { db, opts: o, pg: Boolean(o.databaseUrl), sql: (q, params = []) => rawQuery(o, q, params) };
    },
  };
}
