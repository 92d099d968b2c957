import type { Database } from "@lcp/persistence";
import type { AuditStore } from "./types.js";
import { createPostgresAuditStore } from "./postgres-store.js";
import { createSqliteAuditStore } from "./sqlite-store.js";

export type { AppendResult, AuditStore, BucketCount, CountQuery, EventFilter, StoredEvent, VerifyResult } from "./types.js";

/** Builds the store over an opened (migrated) audit database, on the same file or schema. */
export function createAuditStore(db: Database): AuditStore {
  if (db.driver === "sqlite") return createSqliteAuditStore(String(db.orm.config.get("dbName")));
  return createPostgresAuditStore(String(db.orm.config.get("clientUrl")), db.schema!);
}
