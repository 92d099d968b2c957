/**
 * A real signing-keys for other apps' tests (licensing and fleet-sweep need real signatures and
 * a real appliance CA): the app on port 0 with the test PKI, a random KEK and the given database.
 * Exported as `@lcp/signing-keys/testing`; tests only.
 */
import { randomBytes } from "node:crypto";
import type { TestDatabaseOptions } from "@lcp/testing/db";
import type { TestPki } from "@lcp/testing/pki";
import { startSigningKeys, type SigningKeysApp } from "../src/app.js";
import type { SigningKeysConfig } from "../src/config.js";

/** What a test signing-keys is made of. */
export interface TestSigningKeysOptions {
  pki: TestPki;
  db: TestDatabaseOptions;
  adminTokens: SigningKeysConfig["adminTokens"];
  tokenIssuer: string;
  /** The key-encryption key; a random one when left out. */
  kek?: Uint8Array;
}

/** The config of a test signing-keys: port 0, the test PKI's service certificate, silent logs. */
export async function testSigningKeysConfig(options: TestSigningKeysOptions): Promise<SigningKeysConfig> {
  const { pki, db } = options;
  const cert = await pki.service("signing-keys");
  return {
    app: "signing-keys",
    host: "127.0.0.1",
    port: 0,
    dataDir: db.dataDir,
    databaseUrl: db.databaseUrl,
    databaseSchema: db.schema,
    trustDomain: pki.trustDomain,
    tls: { certPem: cert.certPem, keyPem: cert.keyPem, caPem: pki.ca.certPem, source: "files" },
    adminTokens: options.adminTokens,
    logLevel: "silent",
    kek: { kind: "configured", key: options.kek ?? new Uint8Array(randomBytes(32)) },
    tokenIssuer: options.tokenIssuer,
  };
}

/** Starts signing-keys for a test; close it in teardown. */
export async function startTestSigningKeys(options: TestSigningKeysOptions): Promise<SigningKeysApp> {
  return startSigningKeys(await testSigningKeysConfig(options));
}
