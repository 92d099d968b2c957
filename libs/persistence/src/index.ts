/**
 * @lcp/persistence — MikroORM 6 for every app: SQLite or PostgreSQL from one URL, committed
 * migrations per driver, the audit outbox and its relay. See README.md.
 */
export * from "./orm.js";
export * from "./errors.js";
export * from "./canonical-json.js";
export * from "./outbox.js";
export * from "./audit-event-sanitize.js";
export * from "./migrations.js";
export * from "./relay.js";
export * from "./quarantine.js";
export * from "./listen.js";
export { createSqliteStatementThread, SqliteThreadError, type SqliteStatementThread, type ThreadStatement } from "./sqlite-statement-thread.js";
export { createBackup, type BackupTarget, type CreateBackupOptions } from "./backup/backup.js";
export { restoreBackup, verifyBackup, type RestoreBackupOptions, type RestoreResult } from "./backup/restore.js";
export { BACKUP_FORMAT, BACKUP_VERSION, BackupError, MANIFEST_FILE, parseManifest, type BackupEntry, type BackupManifest } from "./backup/manifest.js";
