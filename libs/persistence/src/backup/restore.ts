/**
 * Restores a backup made by {@link createBackup} (docs/operations.md "Restore"), all or nothing:
 *
 * 1. every check comes before any write: the manifest's shape and version, its driver against
 *    DATABASE_URL's, its apps against the ones expected, every file's size and SHA-256, each SQLite
 *    file's integrity and each dump's table of contents naming its schema;
 * 2. a target that already holds data is replaced only with `force`;
 * 3. SQLite: each file is copied next to its target and checked again there, and only when every
 *    copy is good are they renamed over the targets (stale WAL files of the old database removed
 *    first, so they are never replayed into the restored one);
 * 4. PostgreSQL: one psql transaction drops and recreates every schema and loads every dump
 *    (`pg_restore --schema`, so a dump can only touch its own schema); any failure rolls it all back.
 *
 * The apps must be stopped while it runs; they apply any newer migrations when they start.
 */
import { randomBytes } from "node:crypto";
import { copyFileSync, existsSync, lstatSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import pg from "pg";
import { driverForUrl, type DriverName } from "../orm.js";
import { hasSqliteHeader, settleSqliteFile, sqliteInUse, type BackupTarget } from "./backup.js";
import { BackupError, fileDigest, MANIFEST_FILE, parseManifest, type BackupEntry, type BackupManifest } from "./manifest.js";
import { libpqConnection, runTool, toolOutput } from "./pg-tools.js";

/** Options of {@link restoreBackup}. */
export interface RestoreBackupOptions {
  /** The backup directory. */
  dir: string;
  /** The apps this installation runs: the backup must hold exactly these. */
  targets: readonly BackupTarget[];
  dataDir: string;
  databaseUrl?: string | undefined;
  /** Replace databases that already hold data. */
  force?: boolean;
  /** How long PostgreSQL waits for a lock on a schema before giving up (a running app holds them). Default 5 s. */
  lockTimeoutMs?: number;
}

/** Reads and checks `<dir>/manifest.json` and every file it names; throws {@link BackupError} at the first mismatch. */
export async function verifyBackup(dir: string, expected: { driver: DriverName; targets: readonly BackupTarget[] }): Promise<BackupManifest> {
  const manifestPath = join(dir, MANIFEST_FILE);
  if (!existsSync(manifestPath)) throw new BackupError(`${dir} holds no ${MANIFEST_FILE}: not a backup, or an unfinished one`);
  if (statSync(manifestPath).size > 64 * 1024) throw new BackupError(`${MANIFEST_FILE} is too large to be an lcp backup manifest`);
  const manifest = parseManifest(readFileSync(manifestPath, "utf8"));
  if (manifest.driver !== expected.driver) {
    throw new BackupError(`this backup is of ${manifest.driver} but DATABASE_URL selects ${expected.driver}: restore it with the driver it was made on`);
  }
  const want = new Map(expected.targets.map((t) => [t.app, t]));
  const have = new Set(manifest.entries.map((e) => e.app));
  const missing = [...want.keys()].filter((a) => !have.has(a));
  const extra = [...have].filter((a) => !want.has(a));
  if (missing.length || extra.length) {
    throw new BackupError(`the backup's apps do not match this installation's (${[missing.length ? `missing ${missing.join(", ")}` : "", extra.length ? `unknown ${extra.join(", ")}` : ""].filter(Boolean).join("; ")})`);
  }
  for (const entry of manifest.entries) {
    if (manifest.driver === "postgresql" && entry.schema !== want.get(entry.app)!.schema) {
      throw new BackupError(`the backup holds ${entry.app} in schema ${entry.schema}, but this installation keeps it in ${want.get(entry.app)!.schema}`);
    }
    await verifyFile(dir, entry);
    // Only the header here (opening the file could write beside it); the page-by-page check runs on the staged copy.
    if (manifest.driver === "sqlite") {
      if (!hasSqliteHeader(join(dir, entry.file))) throw new BackupError(`${entry.file} is not a SQLite database`);
    } else await verifyDumpSchema(join(dir, entry.file), entry);
  }
  return manifest;
}

async function verifyFile(dir: string, entry: BackupEntry): Promise<void> {
  const path = join(dir, entry.file);
  let stat;
  try {
    stat = lstatSync(path);
  } catch {
    throw new BackupError(`${entry.file} is missing from the backup`);
  }
  // A link could make the restore read something the manifest does not describe.
  if (!stat.isFile()) throw new BackupError(`${entry.file} is not a regular file`);
  const digest = await fileDigest(path);
  if (digest.bytes !== entry.bytes || digest.sha256 !== entry.sha256) {
    throw new BackupError(`${entry.file} does not match its size and SHA-256 in ${MANIFEST_FILE}: the backup was changed or damaged`);
  }
}

/** The dump's table of contents must define the entry's schema: a dump of another schema is refused before anything is dropped. */
async function verifyDumpSchema(path: string, entry: BackupEntry): Promise<void> {
  let toc: string;
  try {
    toc = await toolOutput("pg_restore", ["--list", path], process.env);
  } catch (err) {
    throw new BackupError(`${entry.file} is not a pg_dump custom-format archive (${(err as Error).message.slice(0, 300)})`);
  }
  if (!toc.split("\n").some((line) => new RegExp(`^\\d+; \\d+ \\d+ SCHEMA - ${entry.schema} `).test(line))) {
    throw new BackupError(`${entry.file} is not a dump of schema ${entry.schema}`);
  }
}

/** What {@link restoreBackup} restored. */
export interface RestoreResult {
  manifest: BackupManifest;
  /** Apps whose existing data was replaced (only with `force`). */
  replaced: string[];
}

/**
 * Restores the backup in `dir` into the databases of `targets`, all or nothing.
 * @throws BackupError for a backup that does not fit (nothing is written); other errors from the tools (nothing is kept).
 */
export async function restoreBackup(options: RestoreBackupOptions): Promise<RestoreResult> {
  const dir = resolve(options.dir);
  const driver = driverForUrl(options.databaseUrl);
  const manifest = await verifyBackup(dir, { driver, targets: options.targets });
  if (driver === "sqlite") {
    const occupied = manifest.entries.filter((e) => existsSync(join(options.dataDir, e.file)) && statSync(join(options.dataDir, e.file)).size > 0).map((e) => e.app);
    refuseOccupied(occupied, options.force, `${options.dataDir} already holds databases of`);
    const inUse = manifest.entries.filter((e) => occupied.includes(e.app) && sqliteInUse(join(options.dataDir, e.file))).map((e) => e.file);
    if (inUse.length > 0) throw new BackupError(`${inUse.join(", ")} ${inUse.length > 1 ? "are" : "is"} open in another process (is an app still running?): stop every app first`);
    await restoreSqlite(dir, options.dataDir, manifest);
    return { manifest, replaced: occupied };
  }
  const occupied = await schemasWithTables(options.databaseUrl!, manifest.entries.map((e) => e.schema!));
  refuseOccupied(
    manifest.entries.filter((e) => occupied.includes(e.schema!)).map((e) => e.app),
    options.force,
    "the database already holds tables of",
  );
  await restorePostgres(dir, options.databaseUrl!, manifest, options.lockTimeoutMs ?? 5_000);
  return { manifest, replaced: manifest.entries.filter((e) => occupied.includes(e.schema!)).map((e) => e.app) };
}

function refuseOccupied(apps: string[], force: boolean | undefined, what: string): void {
  if (apps.length > 0 && !force) {
    throw new BackupError(`${what} ${apps.join(", ")}: stop every app and pass --force to replace them with the backup`);
  }
}

async function restoreSqlite(dir: string, dataDir: string, manifest: BackupManifest): Promise<void> {
  const staged: Array<{ from: string; to: string }> = [];
  const suffix = `.restore-${randomBytes(4).toString("hex")}`;
  try {
    for (const entry of manifest.entries) {
      const to = join(dataDir, entry.file);
      const from = `${to}${suffix}`;
      staged.push({ from, to });
      copyFileSync(join(dir, entry.file), from);
      // Checked again where it will live: the copy, not just its source, must be what the manifest describes.
      if ((await fileDigest(from)).sha256 !== entry.sha256) throw new BackupError(`the copy of ${entry.file} in ${dataDir} differs from the backup (changed while restoring?)`);
      settleSqliteFile(from, `the restored copy of ${entry.file}`);
    }
  } catch (err) {
    for (const { from } of staged) for (const f of [from, `${from}-wal`, `${from}-shm`, `${from}-journal`]) rmSync(f, { force: true });
    throw err;
  }
  for (const { from, to } of staged) {
    // The old database's WAL would otherwise be replayed into the restored file on first open.
    for (const stale of [`${to}-wal`, `${to}-shm`, `${to}-journal`]) rmSync(stale, { force: true });
    renameSync(from, to);
  }
}

async function schemasWithTables(databaseUrl: string, schemas: string[]): Promise<string[]> {
  const client = new pg.Client({ connectionString: libpqConnection(databaseUrl).url, password: new URL(databaseUrl).password || undefined });
  await client.connect();
  try {
    const res = await client.query<{ schema: string }>(
      "select distinct table_schema as schema from information_schema.tables where table_schema = any($1::text[])",
      [schemas],
    );
    return res.rows.map((r) => r.schema);
  } finally {
    await client.end();
  }
}

async function restorePostgres(dir: string, databaseUrl: string, manifest: BackupManifest, lockTimeoutMs: number): Promise<void> {
  const { url, env } = libpqConnection(databaseUrl);
  // One transaction for every schema: psql commits only at the end of its input, and is killed
  // (rolling back) if any dump fails to load.
  const psql = runTool("psql", ["--no-psqlrc", "--quiet", "--single-transaction", "--set=ON_ERROR_STOP=1", `--dbname=${url}`, "--file=-"], env, { stdin: "pipe", stdout: "ignore" });
  // psql stopping early (a failed statement) is the error to report; writes into its closed stdin are not.
  const psqlEndedEarly = psql.done.then(() => {
    throw new Error("psql ended before the whole restore script was sent");
  });
  psqlEndedEarly.catch(() => undefined);
  const stdin = psql.child.stdin!;
  stdin.on("error", () => undefined);
  const write = (text: string) => Promise.race([new Promise<void>((done, fail) => stdin.write(text, (err) => (err ? fail(err) : done()))), psqlEndedEarly]);
  try {
    // Only warnings and errors reach stderr, so a failure's message is the error itself.
    await write("SET client_min_messages = warning;\n");
    for (const entry of manifest.entries) {
      // A running app's open transaction holds locks on its tables: fail fast instead of queueing
      // behind it. Set before every DROP, because each pg_restore script resets it to 0.
      await write(`SET lock_timeout = ${Math.max(1, Math.floor(lockTimeoutMs))};\n`);
      // Dropped with everything in it (a newer migration's tables too), then recreated empty for pg_restore.
      await write(`DROP SCHEMA IF EXISTS "${entry.schema}" CASCADE;\nCREATE SCHEMA "${entry.schema}";\n`);
      const restore = runTool("pg_restore", ["--no-owner", "--no-privileges", `--schema=${entry.schema}`, "--file=-", join(dir, entry.file)], env);
      restore.done.catch(() => undefined);
      // In order: pipe() writes each chunk as it arrives, so the next entry's statements follow this script.
      restore.child.stdout!.pipe(stdin, { end: false });
      await Promise.race([restore.done, psqlEndedEarly]);
    }
    stdin.end();
    await psql.done;
  } catch (err) {
    const running = psql.child.exitCode === null && psql.child.signalCode === null;
    if (running) psql.child.kill("SIGKILL");
    // psql's own error (e.g. the statement that failed) explains more than the broken pipe it left behind.
    const psqlError = running ? undefined : await psql.done.then(() => undefined, (e: unknown) => e as Error);
    await psql.done.catch(() => undefined);
    const message = (psqlError ?? (err as Error)).message;
    if (/lock timeout/.test(message)) {
      throw new Error(`nothing was restored: a schema is in use by another session (is an app still running? stop every app first): ${message}`);
    }
    throw new Error(`nothing was restored (the transaction was rolled back): ${message}`);
  }
}
