/**
 * Test support for fleet-sweep: start the real app on port 0 over mTLS with a test database, an
 * admin token issuer, and licensing's address; and a stand-in licensing ReconcileService over a
 * fleet held in memory, for the fleet-sweep side's own behaviour (locking, failures, paging).
 * The full story against the real licensing app is in sweep-reconciles-real-licensing.test.ts.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { FleetSweepService } from "@lcp/proto/fleet/v1/fleet_sweep_service_pb";
import { ReconcileResponseSchema, ReconcileService } from "@lcp/proto/licensing/v1/reconcile_service_pb";
import { DeploymentState, LockReason, TransitionSchema } from "@lcp/proto/licensing/v1/types_pb";
import { createAdminClient, createLogger } from "@lcp/rpc";
import { createOrm, type Database } from "@lcp/persistence";
import { testDatabases, type TestDatabase, type TestDatabaseOptions } from "@lcp/testing/db";
import { createTestPki, type TestPki } from "@lcp/testing/pki";
import { startTestServer, type TestServer } from "@lcp/testing/server";
import { createAdminTokenVerifier, ensureDevAdminIssuer } from "@lcp/tokens";
import { startFleetSweep, type FleetSweepApp } from "../src/app.js";
import type { FleetSweepConfig } from "../src/config.js";
import { createSweepStore, type SweepStore } from "../src/storage/sweep-store.js";
import { entities, migrations } from "../src/storage/schema.js";

/** A running fleet-sweep app and an admin client for it. */
export interface SweepUnderTest {
  app: FleetSweepApp;
  db: TestDatabaseOptions;
  client(roles?: readonly string[]): ReturnType<typeof createAdminClient<typeof FleetSweepService>>;
  close(): Promise<void>;
}

/** Starts fleet-sweep against `licensingUrl` on a fresh database of `tdb`; scheduler off unless overridden. */
export async function startSweepUnderTest(
  tdb: TestDatabase,
  licensingUrl: string,
  overrides: Partial<FleetSweepConfig> = {},
  dbOptions?: TestDatabaseOptions,
): Promise<SweepUnderTest> {
  const pki = await createTestPki();
  const db = dbOptions ?? tdb.options("fleet-sweep");
  const issuerDir = await mkdtemp(join(tmpdir(), "lcp-fleet-sweep-issuer-"));
  const issuer = await ensureDevAdminIssuer(issuerDir);
  const cert = await pki.service("fleet-sweep");
  const app = await startFleetSweep({
    port: 0,
    trustDomain: pki.trustDomain,
    tls: { certPem: cert.certPem, keyPem: cert.keyPem, caPem: pki.ca.certPem },
    adminTokens: createAdminTokenVerifier({ issuer: issuer.issuer, audience: issuer.audience, jwks: issuer.jwks }),
    database: { databaseUrl: db.databaseUrl, dataDir: db.dataDir, schema: db.schema },
    licensingUrl,
    sweepIntervalMs: null,
    pageSize: 1_000,
    reconcileRetries: 0,
    shutdownGraceMs: 2_000,
    ...overrides,
  });
  let closed: Promise<void> | undefined;
  return {
    app,
    db,
    client: (roles = ["support"]) =>
      createAdminClient(FleetSweepService, {
        baseUrl: app.url,
        caPem: pki.ca.certPem,
        retries: 0,
        timeoutMs: 120_000,
        token: () => issuer.mint({ subject: "test-support", roles, ttlSeconds: 600 }),
      }),
    close: () =>
      (closed ??= (async () => {
        await app.close();
        if (!dbOptions) await db.cleanup();
        await rm(issuerDir, { recursive: true, force: true });
      })()),
  };
}

/** One deployment of the stand-in fleet: its stored state and the state the facts now say. */
export interface FakeDeployment {
  id: string;
  stored: DeploymentState;
  derived: DeploymentState;
  lockReason?: LockReason;
  /** How many times a transition was applied to it (must never exceed 1 per change). */
  applied: number;
}

/** A stand-in licensing with ReconcileService over an in-memory fleet. */
export interface FakeLicensing {
  server: TestServer;
  url: string;
  fleet: FakeDeployment[];
  /** Every Reconcile request seen. */
  requests: Array<{ sweepId: string; now: Date | undefined; after: string; pageSize: number; dryRun: boolean; countsOnly: boolean }>;
  /** Runs before each page is answered (delay it, fail it). */
  beforePage?: (index: number) => Promise<void> | void;
  close(): Promise<void>;
}

/** Deployment ids that sort like UUIDv7s: `00000000-0000-7000-8000-<12 digit n>`. */
export function fakeId(n: number): string {
  return `00000000-0000-7000-8000-${String(n).padStart(12, "0")}`;
}

/** Starts the stand-in licensing on port 0 (its server certificate is licensing's). */
export async function startFakeLicensing(fleet: FakeDeployment[], pki?: TestPki): Promise<FakeLicensing> {
  const fake: Partial<FakeLicensing> & { requests: FakeLicensing["requests"]; fleet: FakeDeployment[] } = { fleet, requests: [] };
  let pages = 0;
  const server = await startTestServer({
    name: "licensing",
    pki: pki ?? (await createTestPki()),
    register: (router) =>
      router.service(ReconcileService, {
        async reconcile(req) {
          fake.requests.push({
            sweepId: req.sweepId,
            now: req.now ? timestampDate(req.now) : undefined,
            after: req.afterDeploymentId,
            pageSize: req.pageSize,
            dryRun: req.dryRun,
            countsOnly: req.countsOnly,
          });
          await fake.beforePage?.(pages++);
          const sorted = [...fake.fleet].sort((a, b) => (a.id < b.id ? -1 : 1));
          const page = sorted.filter((d) => d.id > req.afterDeploymentId).slice(0, req.pageSize || 1000);
          const transitions = page
            .filter((d) => d.stored !== d.derived)
            .map((d) => {
              const t = create(TransitionSchema, { deploymentId: d.id, fromState: d.stored, toState: d.derived, lockReason: d.lockReason ?? LockReason.UNSPECIFIED });
              if (!req.dryRun) {
                d.stored = d.derived;
                d.applied += 1;
              }
              return t;
            });
          const last = page[page.length - 1];
          const more = last !== undefined && sorted[sorted.length - 1]!.id !== last.id;
          // The counts per kind, as licensing always reports them.
          const counts = new Map<string, { fromState: DeploymentState; toState: DeploymentState; lockReason: LockReason; count: number }>();
          for (const t of transitions) {
            const key = `${t.fromState}>${t.toState}:${t.lockReason}`;
            const entry = counts.get(key) ?? { fromState: t.fromState, toState: t.toState, lockReason: t.lockReason, count: 0 };
            entry.count += 1;
            counts.set(key, entry);
          }
          return create(ReconcileResponseSchema, {
            examined: page.length,
            transitions: req.countsOnly ? [] : transitions,
            counts: [...counts.values()],
            conflicts: 0,
            nextAfterDeploymentId: more ? last.id : "",
          });
        },
      }),
  });
  return Object.assign(fake, {
    server,
    url: server.url,
    close: () => server.close(),
  }) as FakeLicensing;
}

/** A fleet of `n` deployments, every `everyNth` of which the facts now say moved ACTIVE → GRACE. */
export function fleetOf(n: number, everyNth: number): FakeDeployment[] {
  return Array.from({ length: n }, (_, i) => ({
    id: fakeId(i + 1),
    stored: DeploymentState.ACTIVE,
    derived: i % everyNth === 0 ? DeploymentState.GRACE : DeploymentState.ACTIVE,
    applied: 0,
  }));
}

/** An Unavailable error as licensing going away produces. */
export const unavailable = () => new ConnectError("licensing is shutting down", Code.Unavailable);

/**
 * The real sweep store on a fresh SQLite database, for tests of the runner alone; call `close`
 * after each test (afterEach).
 */
export function sqliteSweepStores(): {
  open(leaseMs?: number): Promise<SweepStore>;
  /** Another replica's store over the database `open` made. */
  rival(owner: string): SweepStore;
  close(): Promise<void>;
} {
  let db: Database | undefined;
  let opts: TestDatabaseOptions | undefined;
  return {
    async open(leaseMs = 60_000) {
      opts = testDatabases().find((t) => t.name === "sqlite")!.options("fleet-sweep");
      db = await createOrm({ ...opts, entities, migrations, logger: createLogger("test", "silent") });
      const store = createSweepStore({ db, now: () => new Date(), owner: "test", leaseMs });
      await store.ensureLockRow();
      return store;
    },
    rival(owner) {
      if (!db) throw new Error("open a store first");
      return createSweepStore({ db, now: () => new Date(), owner, leaseMs: 60_000 });
    },
    async close() {
      await db?.close();
      await opts?.cleanup();
      db = undefined;
      opts = undefined;
    },
  };
}
