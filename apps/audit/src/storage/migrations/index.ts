import type { AppMigrations } from "@lcp/persistence";
import { Migration20251126150000AuditEvent as PgAuditEvent } from "./postgresql/Migration20251126150000AuditEvent.js";
import { Migration20251126150000AuditEvent as SqliteAuditEvent } from "./sqlite/Migration20251126150000AuditEvent.js";

/**
 * The audit app's committed migrations, one ordered list per driver (classes, not a glob, so
 * they bundle). A test asserts they produce exactly the schema the entities describe.
 */
export const auditMigrations: AppMigrations = {
  sqlite: [{ name: "Migration20251126150000AuditEvent", class: SqliteAuditEvent }],
  postgresql: [{ name: "Migration20251126150000AuditEvent", class: PgAuditEvent }],
};
