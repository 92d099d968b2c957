/**
 * The real control plane for sweep tests: signing-keys, licensing and fleet-sweep started from
 * their `start*` functions on port 0 over mTLS, each on its own database of the suite's driver,
 * sharing one test clock (licensing checks the sweep's `now` against its own time, so both must
 * move together). Deployments can be provisioned and activated through the API, or seeded
 * straight into licensing's table for fleet-sized tests.
 */
import { randomBytes } from "node:crypto";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import type { Client } from "@connectrpc/connect";
import { applianceSpiffeId, generateKeyAndCsr } from "@lcp/pki";
import { FleetSweepService } from "@lcp/proto/fleet/v1/fleet_sweep_service_pb";
import { ApplianceService } from "@lcp/proto/licensing/v1/appliance_service_pb";
import { LicensingService } from "@lcp/proto/licensing/v1/licensing_service_pb";
import { ReconcileService } from "@lcp/proto/licensing/v1/reconcile_service_pb";
import { DeploymentKind, type Connectivity, type License } from "@lcp/proto/licensing/v1/types_pb";
import { createAdminClient, createClient } from "@lcp/rpc";
import { startLicensing, type LicensingApp } from "@lcp/licensing/app";
import { startTestSigningKeys } from "@lcp/signing-keys/testing";
import { outboxRowEvents } from "@lcp/persistence";
import type { AuditEvent } from "@lcp/proto/audit/v1/audit_service_pb";
import { rawQuery, type TestDatabase, type TestDatabaseOptions } from "@lcp/testing/db";
import { createTestPki, type TestPki } from "@lcp/testing/pki";
import { createAdminTokenVerifier, ensureDevAdminIssuer } from "@lcp/tokens";
import { startFleetSweep, type FleetSweepApp } from "../src/app.js";
import type { FleetSweepConfig } from "../src/config.js";

type LicensingConfig = Parameters<typeof startLicensing>[0];

const ISSUER = "https://lcp.test/licensing";

/** The three apps, their shared clock, and callers of every kind. */
export interface ControlPlane {
  pki: TestPki;
  clock: { now(): Date; advance(ms: number): void };
  licensingDb: TestDatabaseOptions;
  licensing: LicensingApp;
  sweep: FleetSweepApp;
  /** LicensingService as an admin with these roles. */
  admin(...roles: string[]): Client<typeof LicensingService>;
  /** FleetSweepService as an admin (support by default). */
  sweeper(...roles: string[]): Client<typeof FleetSweepService>;
  /** ReconcileService with the fleet-sweep service certificate (what fleet-sweep itself uses). */
  reconciler: Client<typeof ReconcileService>;
  /** ReconcileService with an admin bearer token (must be refused). */
  adminReconciler(...roles: string[]): Client<typeof ReconcileService>;
  anonymousAppliance: Client<typeof ApplianceService>;
  /** Raw SQL on licensing's database (driver placeholders: `?` SQLite, `$1` PostgreSQL). */
  sql<T = Record<string, unknown>>(query: string, params?: unknown[]): Promise<T[]>;
  /** Stops licensing only (fault tests); `startLicensingAgain` brings it back on the same port and database. */
  stopLicensing(): Promise<void>;
  startLicensingAgain(): Promise<void>;
  close(): Promise<void>;
}

/** Starts signing-keys, licensing and fleet-sweep (scheduler off unless overridden). */
export async function startControlPlane(tdb: TestDatabase, sweepOverrides: Partial<FleetSweepConfig> = {}): Promise<ControlPlane> {
  const pki = await createTestPki();
  const skDb = tdb.options("signing-keys");
  const licensingDb = tdb.options("licensing");
  const sweepDb = tdb.options("fleet-sweep");
  const dev = await ensureDevAdminIssuer(licensingDb.dataDir);
  const adminTokens = { issuer: dev.issuer, audience: dev.audience, jwks: dev.jwks, rolesClaim: "roles", dev: true };
  const cleanups: (() => Promise<void>)[] = [() => skDb.cleanup(), () => licensingDb.cleanup(), () => sweepDb.cleanup()];
  const runCleanups = async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  };
  try {
    const signingKeys = await startTestSigningKeys({ pki, db: skDb, adminTokens, tokenIssuer: ISSUER });
    cleanups.push(() => signingKeys.close());

    let offset = 0;
    const clock = { now: () => new Date(Date.now() + offset), advance: (ms: number) => void (offset += ms) };
    const own = await pki.service("licensing");
    let licensingConfig: LicensingConfig = {
      app: "licensing",
      host: "127.0.0.1",
      port: 0,
      dataDir: licensingDb.dataDir,
      databaseUrl: licensingDb.databaseUrl,
      databaseSchema: licensingDb.schema,
      trustDomain: pki.trustDomain,
      tls: { certPem: own.certPem, keyPem: own.keyPem, caPem: pki.ca.certPem, source: "files" },
      adminTokens,
      logLevel: "silent",
      signingKeysUrl: signingKeys.url,
      tokenIssuer: ISSUER,
      replicaId: "test",
      now: clock.now,
    };
    let licensing = await startLicensing(licensingConfig);
    // Restarts reuse the port, so fleet-sweep's configured LICENSING_URL stays right.
    licensingConfig = { ...licensingConfig, port: licensing.port };
    cleanups.push(() => licensing.close());

    const sweepCert = await pki.service("fleet-sweep");
    const sweep = await startFleetSweep({
      port: 0,
      trustDomain: pki.trustDomain,
      tls: { certPem: sweepCert.certPem, keyPem: sweepCert.keyPem, caPem: pki.ca.certPem },
      adminTokens: createAdminTokenVerifier({ issuer: dev.issuer, audience: dev.audience, jwks: dev.jwks }),
      database: { databaseUrl: sweepDb.databaseUrl, dataDir: sweepDb.dataDir, schema: sweepDb.schema },
      licensingUrl: licensing.url,
      sweepIntervalMs: null,
      pageSize: 1_000,
      reconcileRetries: 0,
      shutdownGraceMs: 2_000,
      now: clock.now,
      ...sweepOverrides,
    });
    cleanups.push(() => sweep.close());

    const caPem = pki.ca.certPem;
    const token = (roles: string[]) => () => dev.mint({ subject: `test-${roles.join("+")}`, roles, ttlSeconds: 600 });
    return {
      pki,
      clock,
      licensingDb,
      get licensing() {
        return licensing;
      },
      sweep,
      admin: (...roles) => createAdminClient(LicensingService, { baseUrl: licensing.url, caPem, token: token(roles), retries: 0 }),
      sweeper: (...roles) =>
        createAdminClient(FleetSweepService, {
          baseUrl: sweep.url,
          caPem,
          token: token(roles.length ? roles : ["support"]),
          retries: 0,
          timeoutMs: 300_000,
        }),
      reconciler: createClient(ReconcileService, {
        baseUrl: licensing.url,
        tls: { caPem, certPem: sweepCert.certPem, keyPem: sweepCert.keyPem },
        retries: 0,
        timeoutMs: 120_000,
      }),
      adminReconciler: (...roles) => createAdminClient(ReconcileService, { baseUrl: licensing.url, caPem, token: token(roles), retries: 0 }),
      anonymousAppliance: createClient(ApplianceService, { baseUrl: licensing.url, tls: { caPem }, retries: 0 }),
      sql: (query, params) => rawQuery(licensingDb, query, params),
      stopLicensing: () => licensing.close(),
      async startLicensingAgain() {
        licensing = await startLicensing(licensingConfig);
        cleanups.push(() => licensing.close());
      },
      close: runCleanups,
    } as ControlPlane;
  } catch (err) {
    await runCleanups();
    throw err;
  }
}

/** A box that can activate a licence: a fingerprint, and a key with a CSR for its SPIFFE id. */
export interface Box {
  fingerprint: string;
  keyPem: string;
  csrPem: string;
}

/** Provisions an ON_PREM deployment (licence auto-issued, `termMs` long; ONLINE unless `connectivity` says) and activates it from a new box. */
export async function provisionAndActivate(cp: ControlPlane, termMs?: number, connectivity?: Connectivity): Promise<{ deploymentId: string; license: License; box: Box }> {
  const res = await cp.admin("onboarding").provisionDeployment({
    name: `site-${randomBytes(4).toString("hex")}`,
    customer: "St. Example Hospital",
    kind: DeploymentKind.ON_PREM,
    entitlements: ["imaging"],
    ...(termMs ? { term: durationFromMs(termMs) } : {}),
    ...(connectivity ? { connectivity } : {}),
  });
  const deploymentId = res.deployment!.id;
  const { keyPem, csrPem } = await generateKeyAndCsr({ commonName: deploymentId, spiffeId: applianceSpiffeId(cp.pki.trustDomain, deploymentId) });
  const box = { fingerprint: `box-${randomBytes(6).toString("hex")}`, keyPem, csrPem };
  await activate(cp, res.license!, box);
  return { deploymentId, license: res.license!, box };
}

/** Activates (or re-activates: a reinstall of the same box) a licence. */
export async function activate(cp: ControlPlane, license: License, box: Box): Promise<void> {
  await cp.anonymousAppliance.activate({ licenseId: license.id, licenseToken: license.token, fingerprint: box.fingerprint, csrPem: box.csrPem, agentVersion: "test/1.0" });
}

/** A timestamp parameter as licensing's table stores it on this driver (SQLite: epoch ms). */
export function dateParam(cp: ControlPlane, d: Date): unknown {
  return cp.licensingDb.databaseUrl ? d.toISOString() : d.getTime();
}

/** `?` on SQLite, `$n` on PostgreSQL. */
export function ph(cp: ControlPlane, n: number): string {
  return cp.licensingDb.databaseUrl ? `$${n}` : "?";
}

/**
 * Seeds `count` activated deployments straight into licensing's table (one set-based INSERT), all
 * stored ACTIVE; every `staleEvery`-th was last seen `staleMs` before `at` (the sweep will move
 * it), the rest at `at`. Ids sort like UUIDv7s and start with `prefix` (8 hex digits).
 */
export async function seedFleet(cp: ControlPlane, options: { count: number; at: Date; staleEvery: number; staleMs: number; prefix?: string }): Promise<void> {
  const { count, at, staleEvery, staleMs } = options;
  const prefix = options.prefix ?? "00000000";
  const pg = Boolean(cp.licensingDb.databaseUrl);
  const fresh = dateParam(cp, at);
  const stale = dateParam(cp, new Date(at.getTime() - staleMs));
  const expires = dateParam(cp, new Date(at.getTime() + 365 * 86_400_000));
  const cols =
    "id, name, customer, kind, subscription_status, license_id, license_expires_at, activated_at, fingerprint_hash, last_seen_at, state, state_changed_at, version, created_at, updated_at";
  if (pg) {
    await cp.sql(
      `insert into deployment (${cols})
       select '${prefix}-0000-7000-8000-' || lpad(g::text, 12, '0'), 'seed-' || g, 'seed', 'ON_PREM', 'VALID', null, $3::timestamptz, $1::timestamptz,
              repeat('a', 64), case when g % ${staleEvery} = 0 then $2::timestamptz else $1::timestamptz end, 'ACTIVE', $1::timestamptz, 1, $1::timestamptz, $1::timestamptz
       from generate_series(1, ${count}) g`,
      [fresh, stale, expires],
    );
  } else {
    await cp.sql(
      `insert into deployment (${cols})
       with recursive s(g) as (select 1 union all select g + 1 from s where g < ${count})
       select '${prefix}-0000-7000-8000-' || substr('000000000000' || g, -12), 'seed-' || g, 'seed', 'ON_PREM', 'VALID', null, ?, ?,
              '${"a".repeat(64)}', case when g % ${staleEvery} = 0 then ? else ? end, 'ACTIVE', ?, 1, ?, ?
       from s`,
      [expires, fresh, stale, fresh, fresh, fresh, fresh],
    );
  }
}

/**
 * Licensing's audit events in its outbox, in outbox order, every run row expanded as the relay
 * ships it; only rows after `sinceSeq` when given.
 */
export async function outboxEvents(cp: ControlPlane, sinceSeq = 0): Promise<AuditEvent[]> {
  const rows = await cp.sql<{ payload: string; seq: number | string }>("select payload, seq from outbox_event order by seq");
  return rows.filter((r) => Number(r.seq) > sinceSeq).flatMap((r) => outboxRowEvents(r));
}
