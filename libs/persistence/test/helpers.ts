import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { TestDatabase, TestDatabaseOptions } from "@lcp/testing/db";
import { afterEach, beforeEach } from "vitest";
import { createOrm, type Database } from "../src/index.js";
import { entities, migrations } from "./fixtures/outbox-storage/schema.js";

/** Opens the outbox-only fixture schema on a test database. */
export function openFixture(opts: TestDatabaseOptions): Promise<Database> {
  return createOrm({ ...opts, entities, migrations });
}

/**
 * A fresh fixture database for every test of the enclosing describe: `use` receives it before
 * each test; it is closed and dropped after. Hooks a test file registers later run before that
 * close (vitest runs after-hooks as a stack), so relays and listeners stop first.
 */
export function fixturePerTest(tdb: TestDatabase, use: (opts: TestDatabaseOptions, db: Database) => void): void {
  let opts: TestDatabaseOptions;
  let db: Database;
  beforeEach(async () => {
    opts = tdb.options("outbox-app");
    db = await openFixture(opts);
    use(opts, db);
  });
  afterEach(async () => {
    await db.close();
    await opts.cleanup();
  });
}

/** Resolves once `cond` holds (polled every 10 ms); rejects after `timeoutMs`. */
export async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** SHA-256 (hex) of a file, as a backup manifest records it. */
export function fileDigestSync(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}
