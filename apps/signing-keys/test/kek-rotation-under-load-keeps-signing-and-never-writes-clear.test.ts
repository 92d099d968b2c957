/**
 * KEK rotation (`npm run rotate-kek`) under load: replicas rolled out with the new KEK and the
 * old one as KEK_PREVIOUS keep signing while the command re-wraps every private key, one row per
 * transaction; tokens signed before and after verify against the JWKS; afterwards every key is
 * wrapped under the new KEK alone and no private key is anywhere in clear (tables, and on SQLite
 * the raw database and WAL bytes). A run stopped midway is finished by running it again, and a
 * repeated run changes nothing. A replica on the old KEK alone fails clearly: it refuses to start,
 * and a running one refuses to sign with a key it cannot open, writing nothing.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Client } from "@connectrpc/connect";
import { SigningKeyService } from "@lcp/proto/signing/v1/signing_key_service_pb";
import { testDatabases } from "@lcp/testing/db";
import { createKeyring, kekFingerprint, licenseClaims, unwrapSecret, wrappedKekFingerprint } from "@lcp/tokens";
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SYSTEM_ACTOR } from "../src/audit.js";
import { startSigningKeys, type SigningKeysApp } from "../src/app.js";
import { readKekSettings } from "../src/config.js";
import { rewrapAll } from "../src/kek/rewrap.js";
import { createOrm } from "@lcp/persistence";
import { entities, migrations } from "../src/storage/schema.js";
import { expectNoClearSecrets, rowCounts, secretForms, sqliteFileBytes, startHarness, TABLES, type Secret, type SigningKeysHarness } from "./support.js";

const REPO_ROOT = resolve(fileURLToPath(import.meta.url), "../../../..");
const CLI = resolve(REPO_ROOT, "apps/signing-keys/src/cli/rotate-kek.ts");
const b64 = (key: Uint8Array) => Buffer.from(key).toString("base64");
const kidOf = (token: string) => (JSON.parse(Buffer.from(token.split(".")[0]!, "base64url").toString()) as { kid: string }).kid;

/** Runs the rotate-kek command as an operator would, against the harness's database. */
function rotateKek(h: SigningKeysHarness, env: Record<string, string>, args: string[] = []): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, ["--conditions=source", "--import", "tsx", CLI, ...(h.db.schema ? ["--schema", h.db.schema] : []), ...args], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? "", DATA_DIR: h.db.dataDir, ...(h.db.databaseUrl ? { DATABASE_URL: h.db.databaseUrl } : {}), ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.once("close", (code) => done({ code, stdout, stderr }));
  });
}

describe.each(testDatabases())("KEK rotation under load ($name)", (tdb) => {
  let h: SigningKeysHarness;
  let oldKek: Uint8Array;
  const newKek = new Uint8Array(randomBytes(32));
  let rolledOut: SigningKeysApp | undefined;
  let signer: Client<typeof SigningKeyService>;
  let rolledOutAdmin: Client<typeof SigningKeyService>;
  const before: string[] = [];
  const after: string[] = [];

  const sign = (client: Client<typeof SigningKeyService>) =>
    client.sign({
      typ: "license+jwt",
      claims: { ...licenseClaims({ licenseId: "lic-1", deploymentId: "dep-1", entitlements: ["imaging"], notBefore: new Date(Date.now() - 60_000), expiresAt: new Date(Date.now() + 3_600_000) }) },
    });
  const wrappedRows = async () => [
    ...(await h.sql<{ id: string; wrapped: string }>("select kid as id, wrapped_private_key as wrapped from signing_key")),
    ...(await h.sql<{ id: string; wrapped: string }>("select id, wrapped_private_key as wrapped from appliance_ca")),
  ];
  const fingerprints = async () => (await wrappedRows()).map((r) => wrappedKekFingerprint(r.wrapped));

  beforeAll(async () => {
    h = await startHarness(tdb);
    oldKek = h.kek;
    // Several keys and CAs, so the rotation has rows of both tables to move, in several batches.
    await h.admin.createKey({ reason: "kek test" });
    await h.admin.rotateKeys({});
    await h.admin.rotateApplianceCa({ reason: "kek test" });
    for (let i = 0; i < 3; i++) before.push((await sign(h.licensing)).token);
  });
  afterAll(async () => {
    await rolledOut?.close();
    await h?.close();
  });

  it("refuses bad KEK settings and arguments, naming them, before touching anything", async () => {
    await expect(readKekSettings({ KEK_PREVIOUS: b64(oldKek) })).rejects.toThrow(/^KEK_PREVIOUS: needs KEK/);
    await expect(readKekSettings({ KEK: b64(oldKek), KEK_PREVIOUS: b64(oldKek) })).rejects.toThrow(/^KEK_PREVIOUS: is the same key as KEK/);
    await expect(readKekSettings({ KEK: b64(newKek), KEK_PREVIOUS: "not a key" })).rejects.toThrow(/^KEK_PREVIOUS: .*base64 or hex/);
    await expect(readKekSettings({ KEK: b64(newKek), KEK_PREVIOUS: b64(oldKek), KEK_PREVIOUS_FILE: "/nope" })).rejects.toThrow(/^KEK_PREVIOUS_FILE: set KEK_PREVIOUS or/);
    await expect(readKekSettings({ KEK: b64(newKek), KEK_PREVIOUS_FILE: "/nonexistent/kek" })).rejects.toThrow(/^KEK_PREVIOUS_FILE: cannot read/);
    const fps = await fingerprints();
    const noKek = await rotateKek(h, {});
    expect([noKek.code, noKek.stderr.trim()]).toEqual([2, expect.stringMatching(/^rotate-kek: configuration error: KEK: is required/)]);
    const badBatch = await rotateKek(h, { KEK: b64(newKek), KEK_PREVIOUS: b64(oldKek) }, ["--batch-size", "0"]);
    expect([badBatch.code, badBatch.stderr]).toEqual([2, expect.stringMatching(/--batch-size must be a whole number from 1 to 1000/)]);
    const unknown = await rotateKek(h, { KEK: b64(newKek), KEK_PREVIOUS: b64(oldKek) }, ["--all"]);
    expect(unknown.code).toBe(2);
    // Without the KEK the keys were wrapped under, nothing can be moved and nothing is.
    const withoutPrevious = await rotateKek(h, { KEK: b64(newKek) });
    expect([withoutPrevious.code, withoutPrevious.stderr]).toEqual([1, expect.stringMatching(/wrapped under key-encryption key [0-9a-f]{16}, which is not configured/)]);
    expect(await fingerprints()).toEqual(fps);
  }, 60_000);

  it("re-wraps every key under the new KEK while a rolled-out replica signs without a single failure", async () => {
    // Roll-out: a replica with the new KEK and the old one as previous (the old replica keeps running).
    rolledOut = await startSigningKeys({ ...h.config, port: 0, kek: { kind: "configured", key: newKek }, kekPrevious: [oldKek] });
    ({ admin: rolledOutAdmin, licensing: signer } = await h.clientsAt(rolledOut.url));
    expect(new Set(await fingerprints())).toEqual(new Set([kekFingerprint(oldKek)]));
    const check = await rotateKek(h, { KEK: b64(newKek), KEK_PREVIOUS: b64(oldKek) }, ["--check"]);
    expect([check.code, check.stdout]).toEqual([1, expect.stringMatching(/keys still to move/)]);

    let stop = false;
    let failures = 0;
    const load = Array.from({ length: 3 }, async () => {
      while (!stop) {
        try {
          before.push((await sign(signer)).token);
        } catch {
          failures++;
        }
      }
    });
    try {
      // A run stopped after its first batch (a crash, a ^C) leaves a mix of KEKs that readers still open...
      const db = await createOrm({ app: "signing-keys", databaseUrl: h.db.databaseUrl, dataDir: h.db.dataDir, schema: h.db.schema, entities, migrations, migrate: false });
      try {
        const crash = new Error("stopped midway");
        await expect(
          rewrapAll({ db, keyring: createKeyring(newKek, [oldKek]), batchSize: 1, now: () => new Date(), actor: SYSTEM_ACTOR, onBatch: () => { throw crash; } }),
        ).rejects.toBe(crash);
      } finally {
        await db.close();
      }
      expect(new Set(await fingerprints())).toEqual(new Set([kekFingerprint(oldKek), kekFingerprint(newKek)]));
      // ...and the command finishes it, one row per transaction, while the signing goes on.
      const signedBeforeRun = before.length;
      const run = await rotateKek(h, { KEK: b64(newKek), KEK_PREVIOUS: b64(oldKek) }, ["--batch-size", "1"]);
      expect(run.stderr).toBe("");
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(new RegExp(`done: \\d+ keys re-wrapped under KEK ${kekFingerprint(newKek)}, 1 already were`));
      expect(before.length, "tokens signed while the command ran").toBeGreaterThan(signedBeforeRun);
    } finally {
      stop = true;
      await Promise.all(load);
    }
    expect(failures).toBe(0);
    expect(before.length).toBeGreaterThan(3);
    // The NEXT key becomes ACTIVE: it is opened from its re-wrapped envelope to sign.
    const { activated } = await rolledOutAdmin.rotateKeys({});
    for (let i = 0; i < 3; i++) after.push((await sign(signer)).token);
    expect(new Set(after.map(kidOf))).toEqual(new Set([activated!.kid]));
    expect(before.map(kidOf)).not.toContain(activated!.kid);

    const jwks = createLocalJWKSet(JSON.parse((await signer.getJwks({})).jwksJson) as JSONWebKeySet);
    for (const token of [...before, ...after]) await jwtVerify(token, jwks, { issuer: h.issuer, algorithms: ["EdDSA"], typ: "license+jwt" });

    // Every key under the new KEK, which alone opens it; one audit event records the rotation.
    expect(new Set(await fingerprints())).toEqual(new Set([kekFingerprint(newKek)]));
    for (const row of await wrappedRows()) expect(() => unwrapSecret(newKek, row.wrapped, row.id)).not.toThrow();
    const events = await h.sql<{ payload: string }>("select payload from outbox_event where action = 'signing.kek.rotate'");
    expect(events.length).toBeGreaterThanOrEqual(2); // one per committed batch: the stopped run's and the finishing run's
    for (const e of events) expect(e.payload).toContain(kekFingerprint(newKek));
  }, 120_000);

  it("leaves no private key in clear: not in any table, not in the SQLite database or WAL bytes", async () => {
    const secrets: Secret[] = [];
    for (const row of await wrappedRows()) secrets.push(secretForms(`key ${row.id}`, Buffer.from(unwrapSecret(newKek, row.wrapped, row.id)).toString()));
    expect(secrets.length).toBeGreaterThanOrEqual(7);
    const dump = JSON.stringify(await Promise.all(TABLES.map(async (table) => ({ table, rows: await h.sql(`select * from ${table}`) }))));
    expectNoClearSecrets(Buffer.from(dump), secrets, "the tables");
    if (tdb.name === "sqlite") expectNoClearSecrets(sqliteFileBytes(h), secrets, "the SQLite files");
  });

  it("is idempotent: a repeated run moves nothing, and --check passes so KEK_PREVIOUS can go", async () => {
    const again = await rotateKek(h, { KEK: b64(newKek), KEK_PREVIOUS: b64(oldKek) });
    expect([again.code, again.stdout]).toEqual([0, expect.stringMatching(/done: 0 keys re-wrapped under KEK [0-9a-f]{16}, \d+ already were/)]);
    const check = await rotateKek(h, { KEK: b64(newKek) }, ["--check"]);
    expect([check.code, check.stdout.trim()]).toEqual([0, expect.stringMatching(/^rotate-kek: \d+ keys under KEK [0-9a-f]{16}$/)]);
  }, 60_000);

  it("a replica on the old KEK alone fails clearly: it refuses to start, and a running one signs nothing it cannot open", async () => {
    await expect(startSigningKeys({ ...h.config, port: 0 })).rejects.toThrow(
      new RegExp(`wrapped under a key-encryption key that is not configured \\(\\d+ under ${kekFingerprint(newKek)}\\); configured: ${kekFingerprint(oldKek)}`),
    );
    // The old replica (still running since before the roll-out) re-reads the ACTIVE key within its recheck period.
    const counts = await rowCounts(h);
    await new Promise((r) => setTimeout(r, 1_100));
    await expect(sign(h.licensing)).rejects.toThrow();
    expect(await rowCounts(h)).toEqual(counts);
    // With the new KEK alone, a replica starts and signs.
    const fresh = await startSigningKeys({ ...h.config, port: 0, kek: { kind: "configured", key: newKek } });
    try {
      const { licensing } = await h.clientsAt(fresh.url);
      expect((await sign(licensing)).token).toMatch(/^ey/);
    } finally {
      await fresh.close();
    }
  }, 60_000);
});
