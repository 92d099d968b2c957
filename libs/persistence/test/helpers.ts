import type { TestDatabaseOptions } from "@lcp/testing/db";
import { createOrm, type Database } from "../src/index.js";
import { entities, migrations } from "./fixtures/outbox-storage/schema.js";

/** Opens the outbox-only fixture schema on a test database. */
export function openFixture(opts: TestDatabaseOptions): Promise<Database> {
  return createOrm({ ...opts, entities, migrations });
}
