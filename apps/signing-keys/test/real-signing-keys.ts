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

/** Starts signing-keys for a test; close it in teardown. */
export async function startTestSigningKeys(options: {
  pki: TestPki;
  db: TestDatabaseOptions;
  adminTokens: SigningKeysConfig["adminTokens"];
  tokenIssuer: string;
}): Promise<SigningKeysApp> {
  const { pki, db } = options;
  const cert = await pki.service("signing-keys");
  return startSigningKeys({
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
    kek: { kind: "configured", key: new Uint8Array(randomBytes(32)) },
    tokenIssuer: options.tokenIssuer,
  });
}
