/**
 * What `npm run bench` needs of licensing beyond its app (`@lcp/licensing/testing`): a migrated
 * database of its own, and the heartbeat's last-seen writer, to time a flush by itself.
 */
import { createOrm, type Database } from "@lcp/persistence";
import { createLogger } from "@lcp/rpc";
import type { TestDatabaseOptions } from "@lcp/testing/db";
import { entities, migrations } from "../src/storage/schema.js";

export { createLastSeenWriter } from "../src/heartbeat/last-seen-writer.js";

/** Opens (creating and migrating) licensing's database at `options`. */
export function openLicensingDatabase(options: TestDatabaseOptions): Promise<Database> {
  return createOrm({ ...options, entities, migrations, logger: createLogger("licensing", "silent") });
}
