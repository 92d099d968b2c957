/**
 * Test fixtures for licensing: the real app (startLicensing) on port 0 over TLS/mTLS with the test
 * PKI, beside a REAL signing-keys (its own database of the same driver) that signs the tokens and
 * holds the appliance CA; clients for admins of each role, for boxes (anonymous TLS for Activate,
 * then mTLS with the certificate Activate returned), and raw SQL to prove what was (not) written.
 */
import { randomBytes } from "node:crypto";
import { create, type JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { applianceSpiffeId, generateKeyAndCsr } from "@lcp/pki";
import { ApplianceService, type ActivateResponse } from "@lcp/proto/licensing/v1/appliance_service_pb";
import { LicensingService } from "@lcp/proto/licensing/v1/licensing_service_pb";
import { DeploymentKind, type License } from "@lcp/proto/licensing/v1/types_pb";
import { SignRequestSchema, SigningKeyService } from "@lcp/proto/signing/v1/signing_key_service_pb";
import { createAdminClient, createClient, errorReason } from "@lcp/rpc";
import { startTestSigningKeys } from "@lcp/signing-keys/testing";
import { rawQuery, type TestDatabase, type TestDatabaseOptions } from "@lcp/testing/db";
import { createTestPki, type TestPki } from "@lcp/testing/pki";
import { ensureDevAdminIssuer } from "@lcp/tokens";
import { expect } from "vitest";
import { startLicensing, type LicensingApp } from "../src/app.js";
import type { LicensingConfig } from "../src/config.js";
import type { FaultInjection } from "../src/core/deployment-change.js";

type SigningKeysApp = Awaited<ReturnType<typeof startTestSigningKeys>>;

/** The issuer both services are configured with (they must agree). */
export const TEST_ISSUER = "https://lcp.test/licensing";

/** The tables of the licensing database whose rows a refused call must not change. */
export const TABLES = ["deployment", "license", "settings", "certificate", "directive", "outbox_event"] as const;

/** A box: its fingerprint, its key, and (once activated) its certificate. */
export interface Box {
  fingerprint: string;
  keyPem: string;
  csrPem: string;
  activation?: ActivateResponse;
}

/** Licensing and signing-keys under test, and their callers. */
export interface LicensingHarness {
  licensing: LicensingApp;
  signingKeys: SigningKeysApp;
  pki: TestPki;
  db: TestDatabaseOptions;
  /** The licensing clock: real time plus an offset tests may advance. */
  clock: { now(): Date; advance(ms: number): void };
  /** A fault tests may set, run inside each change's transaction before its outbox write. */
  fault: FaultInjection["afterStateChange"] | undefined;
  /** A LicensingService client with a bearer token for these roles. */
  admin(...roles: string[]): Client<typeof LicensingService>;
  /** An ApplianceService client without certificate (Activate). */
  anonymousAppliance: Client<typeof ApplianceService>;
  /** An ApplianceService client over mTLS with a box's activated certificate. */
  applianceClient(box: Box): Client<typeof ApplianceService>;
  /** SigningKeyService as the licensing service identity (to mint tokens the way licensing does). */
  signing: Client<typeof SigningKeyService>;
  sql<T = Record<string, unknown>>(query: string): Promise<T[]>;
  close(): Promise<void>;
}

/** Starts signing-keys and licensing, each on a fresh database of `tdb`'s driver. */
export async function startHarness(tdb: TestDatabase, overrides: Partial<LicensingConfig> = {}): Promise<LicensingHarness> {
  const pki = await createTestPki();
  const skDb = tdb.options("signing-keys");
  const db = tdb.options("licensing");
  const dev = await ensureDevAdminIssuer(db.dataDir);
  const adminTokens = { issuer: dev.issuer, audience: dev.audience, jwks: dev.jwks, rolesClaim: "roles", dev: true };
  const cleanups: (() => Promise<void>)[] = [() => skDb.cleanup(), () => db.cleanup()];
  const runCleanups = async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  };

  try {
    const signingKeys = await startTestSigningKeys({ pki, db: skDb, adminTokens, tokenIssuer: TEST_ISSUER });
    cleanups.push(() => signingKeys.close());

    let offset = 0;
    const clock = { now: () => new Date(Date.now() + offset), advance: (ms: number) => void (offset += ms) };
    const own = await pki.service("licensing");
    const harness = {} as LicensingHarness;
    const config: LicensingConfig = {
      app: "licensing",
      host: "127.0.0.1",
      port: 0,
      dataDir: db.dataDir,
      databaseUrl: db.databaseUrl,
      databaseSchema: db.schema,
      trustDomain: pki.trustDomain,
      tls: { certPem: own.certPem, keyPem: own.keyPem, caPem: pki.ca.certPem, source: "files" },
      adminTokens,
      logLevel: "silent",
      signingKeysUrl: signingKeys.url,
      tokenIssuer: TEST_ISSUER,
      replicaId: "test",
      now: clock.now,
      faults: { afterStateChange: (info) => harness.fault?.(info) },
      ...overrides,
    };
    const licensing = await startLicensing(config);
    cleanups.push(() => licensing.close());

    const caPem = pki.ca.certPem;
    Object.assign(harness, {
      licensing,
      signingKeys,
      pki,
      db,
      clock,
      fault: undefined,
      admin: (...roles: string[]) =>
        createAdminClient(LicensingService, {
          baseUrl: licensing.url,
          caPem,
          token: () => dev.mint({ subject: `test-${roles.join("+")}`, roles, ttlSeconds: 600 }),
          retries: 0,
        }),
      anonymousAppliance: createClient(ApplianceService, { baseUrl: licensing.url, tls: { caPem }, retries: 0 }),
      applianceClient: (box: Box) =>
        createClient(ApplianceService, {
          baseUrl: licensing.url,
          tls: { caPem, certPem: box.activation!.certificatePem, keyPem: box.keyPem },
          retries: 0,
        }),
      signing: createClient(SigningKeyService, {
        baseUrl: signingKeys.url,
        tls: { caPem, certPem: own.certPem, keyPem: own.keyPem },
        retries: 0,
      }),
      sql: (query: string) => rawQuery(db, query),
      close: runCleanups,
    } satisfies Omit<LicensingHarness, never>);
    return harness;
  } catch (err) {
    await runCleanups();
    throw err;
  }
}

/** A new box for `deploymentId`: a fingerprint, and a key with a CSR for its SPIFFE id. */
export async function newBox(h: LicensingHarness, deploymentId: string, fingerprint = `box-${randomBytes(6).toString("hex")}`): Promise<Box> {
  const { keyPem, csrPem } = await generateKeyAndCsr({
    commonName: deploymentId,
    spiffeId: applianceSpiffeId(h.pki.trustDomain, deploymentId),
  });
  return { fingerprint, keyPem, csrPem };
}

/** Activates `license` from `box` (anonymous TLS); records the activation on the box. */
export async function activateBox(h: LicensingHarness, license: License, box: Box): Promise<ActivateResponse> {
  const activation = await h.anonymousAppliance.activate({
    licenseId: license.id,
    licenseToken: license.token,
    fingerprint: box.fingerprint,
    csrPem: box.csrPem,
    agentVersion: "test/1.0",
  });
  box.activation = activation;
  return activation;
}

/** Provisions an ON_PREM deployment (auto-issued licence) as onboarding. */
export async function provisionOnPrem(h: LicensingHarness, name = `site-${randomBytes(4).toString("hex")}`) {
  const res = await h.admin("onboarding").provisionDeployment({
    name,
    customer: "St. Example Hospital",
    kind: DeploymentKind.ON_PREM,
    entitlements: ["imaging", "max-users:50"],
  });
  return { deployment: res.deployment!, license: res.license! };
}

/** Signs a token through signing-keys as licensing does (e.g. a lease, to prove it never passes as a licence). */
export async function signAsLicensing(h: LicensingHarness, typ: string, claims: JsonObject): Promise<string> {
  const res = await h.signing.sign(create(SignRequestSchema, { typ, claims }));
  return res.token;
}

/** Row counts and a checksum of the mutable columns of every table, to prove a refused call wrote nothing. */
export async function snapshot(h: LicensingHarness): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const table of TABLES) {
    const rows = await h.sql(`select * from ${table}`);
    out[table] = JSON.stringify(rows.map((r) => JSON.stringify(r)).sort());
  }
  return out;
}

/** The outbox events as (action, outcome, resource id, details). */
export async function auditEvents(h: LicensingHarness): Promise<{ action: string; outcome: string; resourceId: string; details: Record<string, unknown> }[]> {
  const rows = await h.sql<{ payload: string; seq: number | string }>("select payload, seq from outbox_event order by seq");
  return rows.map((r) => {
    const e = JSON.parse(r.payload) as { action: string; outcome: string; resource?: { id?: string }; details?: Record<string, unknown> };
    return { action: e.action, outcome: e.outcome, resourceId: e.resource?.id ?? "", details: e.details ?? {} };
  });
}

/** Awaits a call expected to fail; checks its Connect code (and ErrorInfo reason when given). */
export async function expectRefusal(call: Promise<unknown>, code: Code, reason?: string): Promise<ConnectError> {
  const error = await call.then(
    () => undefined,
    (err: unknown) => ConnectError.from(err),
  );
  expect(error, "the call should have failed").toBeInstanceOf(ConnectError);
  expect(Code[error!.code], error!.message).toBe(Code[code]);
  if (reason !== undefined) expect(errorReason(error), error!.message).toBe(reason);
  return error!;
}
