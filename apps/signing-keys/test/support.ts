/**
 * Test fixtures for signing-keys: the real app (startSigningKeys) on port 0 over mTLS with the
 * test PKI and a database from @lcp/testing/db, plus clients for every kind of caller.
 */
import { createPrivateKey, randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Client } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import { createAdminClient, createClient, errorReason } from "@lcp/rpc";
import { SigningKeyService } from "@lcp/proto/signing/v1/signing_key_service_pb";
import { rawQuery, type TestDatabase, type TestDatabaseOptions } from "@lcp/testing/db";
import { createTestPki, type TestPki } from "@lcp/testing/pki";
import { ensureDevAdminIssuer, type DevAdminIssuer } from "@lcp/tokens";
import { expect } from "vitest";
import { startSigningKeys, type SigningKeysApp } from "../src/app.js";
import type { SigningKeysConfig } from "../src/config.js";
import { testSigningKeysConfig } from "./real-signing-keys.js";

/** The signing-keys service under test and its callers. */
export interface SigningKeysHarness {
  /** The running app; replaced by {@link SigningKeysHarness.restart}. */
  app: SigningKeysApp;
  config: SigningKeysConfig;
  pki: TestPki;
  db: TestDatabaseOptions;
  kek: Uint8Array;
  issuer: string;
  /** A super_admin (signing.manage). */
  admin: Client<typeof SigningKeyService>;
  /** An admin client with other roles. */
  adminWith(roles: string[]): Client<typeof SigningKeyService>;
  /** The licensing service's certificate: may Sign and IssueApplianceCertificate. */
  licensing: Client<typeof SigningKeyService>;
  /** Another service's certificate. */
  service(name: string): Promise<Client<typeof SigningKeyService>>;
  /** No certificate, no token. */
  anonymous: Client<typeof SigningKeyService>;
  /** A super_admin and the licensing service, aimed at another replica (`url`) on the same database. */
  clientsAt(url: string): Promise<{ admin: Client<typeof SigningKeyService>; licensing: Client<typeof SigningKeyService> }>;
  /** Raw SQL against the app's database, behind the ORM's back. */
  sql<T = Record<string, unknown>>(query: string): Promise<T[]>;
  /** Stops the app and starts it again on the same database, KEK and port (clients keep working). */
  restart(): Promise<void>;
  close(): Promise<void>;
}

/** The tables of the signing-keys database. */
export const TABLES = ["signing_key", "appliance_ca", "issued_certificate", "change_lock", "outbox_event"] as const;

/** Starts signing-keys on a fresh database of `tdb`'s driver. */
export async function startHarness(tdb: TestDatabase, overrides: Partial<SigningKeysConfig> = {}): Promise<SigningKeysHarness> {
  const pki = await createTestPki();
  const db = tdb.options("signing-keys");
  const dev: DevAdminIssuer = await ensureDevAdminIssuer(db.dataDir);
  const kek = new Uint8Array(randomBytes(32));
  const issuer = "https://lcp.test/licensing";
  const config: SigningKeysConfig = {
    ...(await testSigningKeysConfig({
      pki,
      db,
      adminTokens: { issuer: dev.issuer, audience: dev.audience, jwks: dev.jwks, rolesClaim: "roles", dev: true },
      tokenIssuer: issuer,
      kek,
    })),
    ...overrides,
  };
  let app: SigningKeysApp;
  try {
    app = await startSigningKeys(config);
  } catch (err) {
    await db.cleanup();
    throw err;
  }
  const caPem = pki.ca.certPem;
  const adminWith = (roles: string[], baseUrl = app.url) =>
    createAdminClient(SigningKeyService, {
      baseUrl,
      caPem,
      token: () => dev.mint({ subject: `test-${roles.join("+")}`, roles, ttlSeconds: 600 }),
      retries: 0,
    });
  const service = async (name: string, baseUrl = app.url) => {
    const cert = await pki.service(name);
    return createClient(SigningKeyService, { baseUrl, tls: { caPem, certPem: cert.certPem, keyPem: cert.keyPem }, retries: 0 });
  };
  let closed: Promise<void> | undefined;
  const harness: SigningKeysHarness = {
    app,
    config,
    pki,
    db,
    kek,
    issuer,
    admin: adminWith(["super_admin"]),
    adminWith: (roles) => adminWith(roles),
    licensing: await service("licensing"),
    service: (name) => service(name),
    clientsAt: async (url) => ({ admin: adminWith(["super_admin"], url), licensing: await service("licensing", url) }),
    anonymous: createClient(SigningKeyService, { baseUrl: app.url, tls: { caPem }, retries: 0 }),
    sql: (query) => rawQuery(db, query),
    async restart() {
      await harness.app.close();
      harness.app = await startSigningKeys({ ...config, port: harness.app.port });
    },
    close: () =>
      (closed ??= (async () => {
        await harness.app.close();
        await db.cleanup();
      })()),
  };
  return harness;
}

/** Row counts of every table, to prove a refused call wrote nothing. */
export async function rowCounts(h: SigningKeysHarness): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const table of TABLES) {
    if (table === "change_lock") continue; // the lock row's version is bumped by design, never its count
    const [row] = await h.sql<{ n: number | string }>(`select count(*) as n from ${table}`);
    counts[table] = Number(row?.n);
  }
  return counts;
}

/** Awaits a call expected to fail; checks its Connect code (and ErrorInfo reason when given). */
export async function expectRefusal(call: Promise<unknown>, code: Code, reason?: string): Promise<ConnectError> {
  const error = await call.then(
    () => undefined,
    (err: unknown) => ConnectError.from(err),
  );
  expect(error, "the call should have failed").toBeInstanceOf(ConnectError);
  expect(Code[error!.code]).toBe(Code[code]);
  if (reason !== undefined) expect(errorReason(error)).toBe(reason);
  return error!;
}

/** Every clear form a private key could take in storage: PEM text, its base64 body, DER, the JWK `d`. */
export interface Secret {
  label: string;
  strings: string[];
  bytes: Buffer[];
}

/** The clear forms of the PKCS#8 PEM `pem`, to search raw storage for. */
export function secretForms(label: string, pem: string): Secret {
  const key = createPrivateKey(pem);
  const der = key.export({ format: "der", type: "pkcs8" });
  const d = key.export({ format: "jwk" }).d!;
  const body = pem.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, "");
  const dBytes = Buffer.from(d, "base64url");
  return {
    label,
    strings: ["PRIVATE KEY-----", body, body.slice(0, 40), d, dBytes.toString("hex"), dBytes.toString("base64"), der.toString("base64")],
    bytes: [der, dBytes],
  };
}

/** The raw bytes of the SQLite database file and its WAL, as they lie on disk. */
export function sqliteFileBytes(h: Pick<SigningKeysHarness, "db">): Buffer {
  const file = join(h.db.dataDir, "signing-keys.sqlite");
  return Buffer.concat([file, `${file}-wal`].filter(existsSync).map((f) => readFileSync(f)));
}

/** Fails naming `where` if any clear form of any of `secrets` occurs in `raw`. */
export function expectNoClearSecrets(raw: Buffer, secrets: Secret[], where: string): void {
  for (const secret of secrets) {
    for (const bytes of secret.bytes) expect(raw.includes(bytes), `${secret.label} bytes found in ${where}`).toBe(false);
    for (const s of secret.strings) expect(raw.includes(Buffer.from(s)), `${secret.label} text found in ${where}`).toBe(false);
  }
}
