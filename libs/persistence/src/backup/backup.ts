/**
 * Online backups of every app's database into one directory with a manifest (docs/operations.md
 * "Back up"): SQLite files through SQLite's online backup API (better-sqlite3 `.backup()`),
 * PostgreSQL schemas through `pg_dump --format=custom`, one file per app, while the apps run.
 *
 * The directory is written as `<out>.partial-<random>` and renamed to `<out>` only once every file
 * and the manifest are written, so a `<out>` that exists is complete.
 *
 * Consistency across apps: each app is saved at its own instant. The caller lists producers first
 * and the audit store last: an event still in a producer's outbox in its copy is re-sent after a
 * restore (Append is idempotent by event id), while an event delivered before the producer's copy
 * is already in the audit store's later copy. The other order could lose events.
 */
import { randomBytes } from "node:crypto";
import { closeSync, existsSync, mkdirSync, openSync, readSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { driverForUrl, type DriverName } from "../orm.js";
import { BACKUP_FORMAT, BACKUP_VERSION, BackupError, entryFileName, fileDigest, MANIFEST_FILE, type BackupEntry, type BackupManifest } from "./manifest.js";
import { libpqConnection, runTool } from "./pg-tools.js";

/** An app whose database is saved: its name (SQLite `<app>.sqlite`) and its PostgreSQL schema. */
export interface BackupTarget {
  app: string;
  schema: string;
}

/** Options of {@link createBackup}. */
export interface CreateBackupOptions {
  /** In the order to save them (producers first, the audit store last). */
  targets: readonly BackupTarget[];
  /** The apps' DATA_DIR (SQLite files live here). */
  dataDir: string;
  /** The apps' DATABASE_URL; unset means SQLite. */
  databaseUrl?: string | undefined;
  /** The backup directory to create; it must not exist. */
  out: string;
  now?: () => Date;
}

// better-sqlite3 ships no types and @types/better-sqlite3 is not installed; this is all we use.
interface SqliteConnection {
  pragma(sql: string, options?: { simple: boolean }): unknown;
  exec(sql: string): unknown;
  backup(destination: string, options?: { progress?: (info: { totalPages: number; remainingPages: number }) => number }): Promise<unknown>;
  close(): void;
}
/** better-sqlite3's constructor. */
export const Sqlite = createRequire(import.meta.url)("better-sqlite3") as new (file: string, options?: { readonly?: boolean; fileMustExist?: boolean }) => SqliteConnection;

/**
 * Makes `file` a self-contained rollback-journal database (its WAL, if any, folded in and removed)
 * and checks it page by page; throws naming `label` unless SQLite answers "ok". Opens the file
 * read-write: a read-only connection to a WAL database would leave -wal/-shm files behind.
 */
export function settleSqliteFile(file: string, label: string): void {
  let conn: SqliteConnection | undefined;
  try {
    conn = new Sqlite(file, { fileMustExist: true });
    conn.pragma("journal_mode = DELETE");
    const verdict = conn.pragma("integrity_check", { simple: true });
    if (verdict !== "ok") throw new BackupError(`${label} is not a sound SQLite database (integrity_check: ${String(verdict).slice(0, 200)})`);
  } catch (err) {
    if (err instanceof BackupError) throw err;
    throw new BackupError(`${label} is not a SQLite database (${(err as Error).message})`);
  } finally {
    conn?.close();
  }
}

/**
 * Whether another connection (an app still running, in any process) has the SQLite database
 * `file` open: an exclusive lock cannot be had while it does, even when that connection is idle.
 */
export function sqliteInUse(file: string): boolean {
  const conn = new Sqlite(file, { fileMustExist: true });
  try {
    conn.pragma("busy_timeout = 0");
    conn.pragma("locking_mode = EXCLUSIVE");
    conn.exec("BEGIN EXCLUSIVE");
    conn.exec("ROLLBACK");
    return false;
  } catch (err) {
    if ((err as { code?: string }).code === "SQLITE_BUSY") return true;
    throw err;
  } finally {
    conn.close();
  }
}

/** Whether `file` starts with SQLite's header: checked before anything is opened or copied. */
export function hasSqliteHeader(file: string): boolean {
  const fd = openSync(file, "r");
  try {
    const head = Buffer.alloc(16);
    return readSync(fd, head, 0, 16, 0) === 16 && head.toString("latin1") === "SQLite format 3\0";
  } finally {
    closeSync(fd);
  }
}

async function backupSqlite(dataDir: string, app: string, dest: string): Promise<void> {
  const source = join(dataDir, `${app}.sqlite`);
  if (!existsSync(source)) throw new BackupError(`no database for ${app} at ${source} (has it been started with this DATA_DIR?)`);
  const conn = new Sqlite(source, { fileMustExist: true });
  try {
    conn.pragma("busy_timeout = 10000");
    // After the first step, copy everything left in one step: one read snapshot (WAL lets the
    // app keep writing meanwhile), instead of many small steps that restart whenever it writes.
    await conn.backup(dest, { progress: ({ totalPages }) => Math.max(totalPages, 100) });
  } finally {
    conn.close();
  }
  // One file per app in the backup: the copy's WAL (the source is in WAL mode) is folded in.
  settleSqliteFile(dest, `the copy of ${app}`);
}

async function backupSchema(databaseUrl: string, schema: string, dest: string): Promise<void> {
  const { url, env } = libpqConnection(databaseUrl);
  // Owners and grants are left out: a restore recreates the objects as the restoring role.
  await runTool("pg_dump", ["--format=custom", `--schema=${schema}`, "--no-owner", "--no-privileges", `--file=${dest}`, `--dbname=${url}`], env, { stdout: "ignore" }).done;
}

/**
 * Saves every target's database into a new directory `out` with a `manifest.json`, and returns
 * the manifest. Runs against live apps; nothing is locked beyond what a reader takes.
 * @throws BackupError when `out` exists or an app has no database; other errors from the tools.
 */
export async function createBackup(options: CreateBackupOptions): Promise<BackupManifest> {
  const driver: DriverName = driverForUrl(options.databaseUrl);
  const out = resolve(options.out);
  if (existsSync(out)) throw new BackupError(`${out} already exists: a backup is written into a new directory`);
  const createdAt = (options.now ?? (() => new Date()))().toISOString();
  const partial = `${out}.partial-${randomBytes(4).toString("hex")}`;
  // Owner-only: a backup holds every licence, deployment and audit record (private keys only wrapped).
  mkdirSync(partial, { recursive: false, mode: 0o700 });
  try {
    const entries: BackupEntry[] = [];
    for (const { app, schema } of options.targets) {
      const file = entryFileName(driver, app, schema);
      const dest = join(partial, file);
      if (driver === "sqlite") await backupSqlite(options.dataDir, app, dest);
      else await backupSchema(options.databaseUrl!, schema, dest);
      entries.push({ app, ...(driver === "postgresql" ? { schema } : {}), file, ...(await fileDigest(dest)) });
    }
    const manifest: BackupManifest = { format: BACKUP_FORMAT, version: BACKUP_VERSION, driver, createdAt, entries };
    writeFileSync(join(partial, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 });
    renameSync(partial, out);
    return manifest;
  } catch (err) {
    rmSync(partial, { recursive: true, force: true });
    throw err;
  }
}
