/**
 * Backups (createBackup) and restores (restoreBackup) of two apps' databases on each driver: a
 * backup taken while the databases are open restores every row; a restore refuses, with a clear
 * error and without writing anything, a backup that was changed (a flipped byte, a swapped or
 * foreign file, a rewritten manifest), one made on the other driver or for other apps, and a
 * target that already holds data unless forced, or (SQLite) is still open by an app; on PostgreSQL a restore that fails halfway
 * (a schema locked by a running app) leaves every schema as it was.
 */
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { rawQuery, testDatabases, type TestDatabaseOptions } from "@lcp/testing/db";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  BackupError,
  createBackup,
  MANIFEST_FILE,
  newAuditEvent,
  recordAudit,
  restoreBackup,
  type BackupManifest,
  type BackupTarget,
  type Database,
} from "../src/index.js";
import { fileDigestSync, openFixture } from "./helpers.js";

describe.each(testDatabases())("backup and restore ($name)", (tdb) => {
  let alpha: TestDatabaseOptions;
  let beta: TestDatabaseOptions;
  let dbs: Database[] = [];
  let targets: BackupTarget[];
  let work: string;

  beforeEach(async () => {
    alpha = tdb.options("alpha");
    // Both apps share one DATA_DIR (SQLite) or one database (PostgreSQL), as the real apps do.
    beta = { ...alpha, app: "beta", ...(alpha.schema ? { schema: `${alpha.schema}_b` } : {}) };
    dbs = [await openFixture(alpha), await openFixture(beta)];
    targets = [alpha, beta].map((o) => ({ app: o.app, schema: o.schema ?? o.app }));
    work = mkdtempSync(join(tmpdir(), "lcp-backup-test-"));
  });
  afterEach(async () => {
    await Promise.all(dbs.map((db) => db.close()));
    if (beta.databaseUrl) await dropSchema(beta);
    await alpha.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  const storage = () => ({ dataDir: alpha.dataDir, databaseUrl: alpha.databaseUrl });
  const write = (db: Database, n: number, id = "x") =>
    db.transactional(async (em) => {
      for (let i = 0; i < n; i++) recordAudit(em, newAuditEvent({ action: "license.issue", actor: { kind: "system", id: "t" }, resource: { type: "license", id }, outcome: "success" }));
    });
  const ids = async (o: TestDatabaseOptions) => (await rawQuery<{ id: string }>(o, "select id from outbox_event order by seq")).map((r) => r.id);
  const closeAll = async () => {
    await Promise.all(dbs.map((db) => db.close()));
    dbs = [];
  };
  const wipe = async () => {
    await closeAll();
    if (alpha.databaseUrl) {
      await dropSchema(alpha);
      await dropSchema(beta);
    } else {
      for (const f of readdirSync(alpha.dataDir).filter((f) => f.includes(".sqlite"))) rmSync(join(alpha.dataDir, f));
    }
  };
  const backupTo = async (name: string): Promise<string> => {
    const out = join(work, name);
    await createBackup({ targets, ...storage(), out });
    return out;
  };
  const restore = (dir: string, force = false) => restoreBackup({ dir, targets, ...storage(), force, lockTimeoutMs: 300 });
  const manifestOf = (dir: string) => JSON.parse(readFileSync(join(dir, MANIFEST_FILE), "utf8")) as BackupManifest;
  const rewriteManifest = (dir: string, change: (m: BackupManifest) => unknown) => writeFileSync(join(dir, MANIFEST_FILE), JSON.stringify(change(manifestOf(dir))));

  it("restores every row of every app from a backup taken while they were open", async () => {
    await write(dbs[0]!, 5);
    await write(dbs[1]!, 3);
    const before = [await ids(alpha), await ids(beta)];
    const dir = await backupTo("b1");
    const manifest = manifestOf(dir);
    expect(manifest).toMatchObject({ format: "lcp-backup", version: 1, driver: tdb.name, entries: [{ app: "alpha" }, { app: "beta" }] });
    expect(Date.parse(manifest.createdAt)).toBeGreaterThan(Date.now() - 60_000);
    for (const e of manifest.entries) expect(e.sha256).toBe(fileDigestSync(join(dir, e.file)));
    expect(readdirSync(work)).toEqual(["b1"]); // no partial directory left behind
    // One self-contained file per app: no WAL or shared-memory file beside a SQLite copy.
    expect(readdirSync(dir).sort()).toEqual([MANIFEST_FILE, ...manifest.entries.map((e) => e.file)].sort());

    await wipe();
    const result = await restore(dir);
    expect(result.replaced).toEqual([]);
    expect([await ids(alpha), await ids(beta)]).toEqual(before);
    // The restored databases open as the apps open them (migrations table and all).
    dbs = [await openFixture(alpha), await openFixture(beta)];
    await write(dbs[0]!, 1);
    expect((await ids(alpha)).length).toBe(6);
  });

  it("refuses a target that holds data unless forced, and then replaces it", async () => {
    await write(dbs[0]!, 2);
    const dir = await backupTo("b2");
    const backedUp = await ids(alpha);
    await write(dbs[0]!, 4);
    if (tdb.name === "sqlite") {
      // An app still running (its connection open, idle) is found even with --force.
      await expect(restore(dir, true)).rejects.toThrow(/^alpha\.sqlite, beta\.sqlite are open in another process \(is an app still running\?\): stop every app first$/);
    }
    await closeAll();
    const now = await ids(alpha);
    await expect(restore(dir)).rejects.toThrow(/already holds .* alpha, beta: stop every app and pass --force/);
    expect(await ids(alpha)).toEqual(now);
    expect((await restore(dir, true)).replaced).toEqual(["alpha", "beta"]);
    expect(await ids(alpha)).toEqual(backedUp);
  });

  it("refuses a changed, foreign or mismatched backup with a clear error and writes nothing", async () => {
    await write(dbs[0]!, 3);
    const dir = await backupTo("b3");
    await write(dbs[0]!, 2);
    await closeAll();
    const now = await ids(alpha);
    const refused = async (mutate: (copy: string) => void, message: RegExp) => {
      const copy = join(work, `copy-${Math.random().toString(36).slice(2)}`);
      cpSync(dir, copy, { recursive: true });
      mutate(copy);
      const err = await restore(copy, true).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(BackupError);
      expect((err as Error).message).toMatch(message);
      expect(await ids(alpha)).toEqual(now);
    };
    const file = manifestOf(dir).entries[0]!.file;
    await refused((c) => {
      const bytes = readFileSync(join(c, file));
      bytes[bytes.length >> 1] = bytes[bytes.length >> 1]! ^ 0x01;
      writeFileSync(join(c, file), bytes);
    }, new RegExp(`${file.replace(".", "\\.")} does not match its size and SHA-256 in manifest\\.json: the backup was changed or damaged`));
    await refused((c) => rmSync(join(c, file)), /is missing from the backup/);
    await refused((c) => rmSync(join(c, MANIFEST_FILE)), /holds no manifest\.json: not a backup, or an unfinished one/);
    await refused((c) => writeFileSync(join(c, MANIFEST_FILE), "{not json"), /manifest\.json is not valid JSON/);
    await refused((c) => rewriteManifest(c, (m) => ({ ...m, version: 2 })), /version is 2: made by a newer release/);
    await refused((c) => rewriteManifest(c, (m) => ({ ...m, format: "tarball" })), /format must be "lcp-backup"/);
    await refused((c) => rewriteManifest(c, (m) => ({ ...m, entries: [] })), /entries must be a list of 1 to 64 entries/);
    await refused(
      (c) => rewriteManifest(c, (m) => ({ ...m, entries: m.entries.map((e, i) => (i === 0 ? { ...e, file: `../${e.file}` } : e)) })),
      /entries\[0\]\.file must be "/,
    );
    await refused((c) => rewriteManifest(c, (m) => ({ ...m, entries: m.entries.slice(0, 1) })), /do not match this installation's \(missing beta\)/);
    await refused((c) => rewriteManifest(c, (m) => ({ ...m, entries: m.entries.map((e, i) => (i === 1 ? { ...e, app: "gamma", file: e.file.replace(/^[a-z_0-9]+/, tdb.name === "sqlite" ? "gamma" : e.schema!) } : e)) })), /unknown gamma/);
    // Made on the other driver: refused by what DATABASE_URL selects here.
    const other = tdb.name === "sqlite" ? "postgresql" : "sqlite";
    await refused(
      (c) => rewriteManifest(c, (m) => ({ ...m, driver: other, entries: m.entries.map((e) => (other === "sqlite" ? { app: e.app, file: `${e.app}.sqlite`, bytes: e.bytes, sha256: e.sha256 } : { ...e, schema: e.app, file: `${e.app}.dump` })) })),
      new RegExp(`this backup is of ${other} but DATABASE_URL selects ${tdb.name}`),
    );
    // A well-formed manifest over a file that is not what it claims (hashes made to match).
    await refused((c) => {
      const [a, b] = manifestOf(c).entries;
      const aBytes = readFileSync(join(c, a!.file));
      writeFileSync(join(c, a!.file), readFileSync(join(c, b!.file)));
      writeFileSync(join(c, b!.file), aBytes);
      rewriteManifest(c, (m) => ({ ...m, entries: [{ ...a!, sha256: b!.sha256, bytes: b!.bytes }, { ...b!, sha256: a!.sha256, bytes: a!.bytes }] }));
      if (tdb.name === "sqlite") {
        writeFileSync(join(c, a!.file), "not a database at all, just text of some length.".repeat(100));
        rewriteManifest(c, (m) => ({ ...m, entries: m.entries.map((e, i) => (i === 0 ? { ...e, ...fileFacts(join(c, a!.file)) } : e)) }));
      }
    }, tdb.name === "sqlite" ? /alpha\.sqlite is not a (sound )?SQLite database/ : /\.dump is not a dump of schema t_[0-9a-f]+$/);
  });

  it("refuses to write into an existing directory, and leaves nothing behind when an app has no database", async () => {
    mkdtempSync(join(work, "taken-"));
    const taken = readdirSync(work)[0]!;
    await expect(createBackup({ targets, ...storage(), out: join(work, taken) })).rejects.toThrow(/already exists: a backup is written into a new directory/);
    const missing = [...targets, { app: "gamma", schema: `${targets[0]!.schema}_g` }];
    await expect(createBackup({ targets: missing, ...storage(), out: join(work, "never") })).rejects.toThrow(tdb.name === "sqlite" ? /no database for gamma/ : /pg_dump failed .*no matching schemas/);
    expect(readdirSync(work)).toEqual([taken]);
  });

  if (tdb.name === "postgresql") {
    it("rolls every schema back when the restore fails halfway (a schema still in use)", async () => {
      await write(dbs[0]!, 2);
      await write(dbs[1]!, 2);
      const dir = await backupTo("b5");
      await write(dbs[0]!, 3);
      await closeAll();
      const now = [await ids(alpha), await ids(beta)];
      // A "running app" holds a lock on beta's table: alpha's part of the restore runs first, then beta's times out.
      const holder = new pg.Client({ connectionString: beta.databaseUrl });
      await holder.connect();
      try {
        await holder.query("begin");
        await holder.query(`lock table "${beta.schema}".outbox_event in access share mode`);
        await expect(restore(dir, true)).rejects.toThrow(/^nothing was restored: a schema is in use by another session \(is an app still running\? stop every app first\): psql failed \(exit 3\): [^]*lock timeout/);
      } finally {
        await holder.query("rollback");
        await holder.end();
      }
      expect([await ids(alpha), await ids(beta)]).toEqual(now);
    });
  }
});

function fileFacts(path: string): { bytes: number; sha256: string } {
  return { bytes: readFileSync(path).length, sha256: fileDigestSync(path) };
}

async function dropSchema(o: TestDatabaseOptions): Promise<void> {
  const client = new pg.Client({ connectionString: o.databaseUrl });
  await client.connect();
  try {
    await client.query(`drop schema if exists "${o.schema}" cascade`);
  } finally {
    await client.end();
  }
}
