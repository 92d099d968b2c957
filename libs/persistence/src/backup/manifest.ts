/**
 * The manifest of a backup directory (`manifest.json`): what was saved, from which driver, when,
 * and the SHA-256 of every file, so a restore can refuse a backup that does not match the target
 * or was changed since. Parsing is strict: anything unexpected is refused with the field named.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import type { DriverName } from "../orm.js";

/** The `format` value of every manifest: names what the directory is. */
export const BACKUP_FORMAT = "lcp-backup";
/** The manifest version this code writes and the only one it restores. */
export const BACKUP_VERSION = 1;
/** The manifest's file name inside a backup directory. */
export const MANIFEST_FILE = "manifest.json";
/** A manifest larger than this is not one of ours. */
const MAX_MANIFEST_BYTES = 64 * 1024;

/** One app's data in a backup: a SQLite file or a PostgreSQL schema dump. */
export interface BackupEntry {
  /** The app, e.g. `licensing`. */
  app: string;
  /** PostgreSQL: the schema that was dumped. */
  schema?: string | undefined;
  /** The file in the backup directory: `<app>.sqlite` or `<schema>.dump` (pg_dump custom format). */
  file: string;
  bytes: number;
  /** Lowercase hex SHA-256 of the file. */
  sha256: string;
}

/** The whole manifest. */
export interface BackupManifest {
  format: typeof BACKUP_FORMAT;
  version: typeof BACKUP_VERSION;
  driver: DriverName;
  /** ISO-8601 time the backup started. */
  createdAt: string;
  /** In the order they were saved: producers first, the audit store last. */
  entries: BackupEntry[];
}

/** A backup that cannot be restored here: malformed, tampered, for another driver, or a target that needs `--force`. */
export class BackupError extends Error {
  override name = "BackupError";
}

/** The file name an entry must have: nothing else is ever read from a backup directory. */
export function entryFileName(driver: DriverName, app: string, schema: string | undefined): string {
  return driver === "sqlite" ? `${app}.sqlite` : `${schema}.dump`;
}

/** SHA-256 (hex) and size of a file, streamed. */
export async function fileDigest(path: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash("sha256");
  let bytes = 0;
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha256: hash.digest("hex"), bytes };
}

const APP_NAME = /^[a-z][a-z0-9-]{0,62}$/;
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
const SHA256 = /^[0-9a-f]{64}$/;

/**
 * Parses and checks a manifest's text. Every field is checked for shape, and every file name must
 * be exactly the one its app and driver give (so a manifest cannot point outside its directory).
 * @throws BackupError naming the first field that is wrong.
 */
export function parseManifest(text: string): BackupManifest {
  if (Buffer.byteLength(text) > MAX_MANIFEST_BYTES) throw new BackupError(`${MANIFEST_FILE} is larger than ${MAX_MANIFEST_BYTES} bytes: not an lcp backup manifest`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new BackupError(`${MANIFEST_FILE} is not valid JSON`);
  }
  const bad = (field: string, why: string): never => {
    throw new BackupError(`${MANIFEST_FILE}: ${field} ${why}`);
  };
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) bad("(root)", "must be an object");
  const m = raw as Record<string, unknown>;
  if (m.format !== BACKUP_FORMAT) bad("format", `must be "${BACKUP_FORMAT}"`);
  if (m.version !== BACKUP_VERSION) {
    bad("version", typeof m.version === "number" && m.version > BACKUP_VERSION ? `is ${m.version}: made by a newer release; restore it with that release` : `must be ${BACKUP_VERSION}`);
  }
  if (m.driver !== "sqlite" && m.driver !== "postgresql") bad("driver", `must be "sqlite" or "postgresql"`);
  const driver = m.driver as DriverName;
  if (typeof m.createdAt !== "string" || Number.isNaN(Date.parse(m.createdAt)) || m.createdAt.length > 40) bad("createdAt", "must be an ISO-8601 time");
  if (!Array.isArray(m.entries) || m.entries.length === 0 || m.entries.length > 64) bad("entries", "must be a list of 1 to 64 entries");
  const entries = (m.entries as unknown[]).map((value, i): BackupEntry => {
    const field = `entries[${i}]`;
    if (typeof value !== "object" || value === null) bad(field, "must be an object");
    const e = value as Record<string, unknown>;
    if (typeof e.app !== "string" || !APP_NAME.test(e.app)) bad(`${field}.app`, "must be an app name (lowercase letters, digits, -)");
    if (driver === "postgresql" ? typeof e.schema !== "string" || !SCHEMA_NAME.test(e.schema) : e.schema !== undefined) {
      bad(`${field}.schema`, driver === "postgresql" ? "must be a schema name (lowercase letters, digits, _)" : "must be absent on sqlite");
    }
    const schema = e.schema as string | undefined;
    if (e.file !== entryFileName(driver, e.app as string, schema)) bad(`${field}.file`, `must be ${JSON.stringify(entryFileName(driver, e.app as string, schema))}`);
    if (typeof e.bytes !== "number" || !Number.isSafeInteger(e.bytes) || e.bytes < 0) bad(`${field}.bytes`, "must be a byte count");
    if (typeof e.sha256 !== "string" || !SHA256.test(e.sha256)) bad(`${field}.sha256`, "must be 64 lowercase hex digits");
    return { app: e.app as string, ...(schema === undefined ? {} : { schema }), file: e.file as string, bytes: e.bytes as number, sha256: e.sha256 as string };
  });
  const apps = entries.map((e) => e.app);
  if (new Set(apps).size !== apps.length) bad("entries", "name an app twice");
  return { format: BACKUP_FORMAT, version: BACKUP_VERSION, driver, createdAt: m.createdAt as string, entries };
}
