/**
 * `npm run bench -- sweep`: a fleet sweep over 1,000,000 deployments on PostgreSQL (DATABASE_URL
 * set) or 100,000 on SQLite, 10 % of which change state (ACTIVE → GRACE), through the real apps
 * over mTLS (fleet-sweep `Sweep` → licensing `SplitFleet` and `Reconcile`, 50,000 per page, the
 * ranges side by side as fleet-sweep runs by default, with audit events in the outbox; licensing
 * and fleet-sweep each a process of its own, as deployed), beside a
 * bare set-based SQL `UPDATE` of the same rows measured in the same run; then the idempotent
 * re-run over the now unchanged fleet, and on PostgreSQL the same sweep one range at a time
 * (`SWEEP_PARALLELISM=1`; SQLite's SplitFleet never splits). A warm-up round, not counted
 * (`BENCH_SWEEP_WARMUP_ROUNDS`), then interleaved rounds (`BENCH_SWEEP_ROUNDS`: 9 on SQLite, 5 on
 * PostgreSQL), medians. Goal: the sweep within 2× the UPDATE.
 */
import { fileURLToPath } from "node:url";
import { FleetSweepService } from "@lcp/proto/fleet/v1/fleet_sweep_service_pb";
import { SweepStatus } from "@lcp/proto/fleet/v1/fleet_sweep_service_pb";
import { createAdminClient } from "@lcp/rpc";
import { DEFAULT_SWEEP_PARALLELISM, startFleetSweep } from "@lcp/fleet-sweep/app";
import { startLicensing } from "@lcp/licensing/app";
import { startTestSigningKeys } from "@lcp/signing-keys/testing";
import { rawQuery, testDatabases, type TestDatabaseOptions } from "@lcp/testing/db";
import { createTestPki } from "@lcp/testing/pki";
import { createAdminTokenVerifier, ensureDevAdminIssuer } from "@lcp/tokens";
import { ask, forkBenchChild, stop } from "./children.js";
import { heldConnection, seedFleet } from "./fleet-db.js";
import { median, printResults, type BenchResult } from "./result.js";

const ISSUER = "https://lcp.bench/licensing";
const PAGE_SIZE = 50_000;
const STALE_EVERY = 10;
// Older than the default heartbeat_timeout (5 min), well within the grace window (14 d).
const STALE_MS = 10 * 60_000;
// Nine rounds on SQLite, where a round takes well under a second and one sweep swings widely
// within a run: the median of three moved by a fifth from run to run, the median of nine far
// less. PostgreSQL's rounds take seconds and swing less.
const roundsDefault = (pg: boolean) => (pg ? 5 : 9);
// Rounds run first and not counted: the first of each measurement pays for cold code (the apps'
// paths not yet optimised by V8) and cold caches (the baseline's and licensing's page caches),
// by up to 2× on these machines, on both sides at once.
const WARMUP_ROUNDS = Number(process.env.BENCH_SWEEP_WARMUP_ROUNDS ?? 1);

/** Runs the sweep benchmark (see the module comment). */
export async function benchSweep(): Promise<BenchResult[]> {
  const pg = Boolean(process.env.DATABASE_URL);
  const count = Number(process.env.BENCH_SWEEP_COUNT ?? (pg ? 1_000_000 : 100_000));
  const roundCount = Number(process.env.BENCH_SWEEP_ROUNDS ?? roundsDefault(pg));
  const tdb = testDatabases().find((t) => t.name === (pg ? "postgresql" : "sqlite"))!;
  const pki = await createTestPki();
  const dbs = { sk: tdb.options("signing-keys"), lic: tdb.options("licensing"), sweep: tdb.options("fleet-sweep") };
  const dev = await ensureDevAdminIssuer(dbs.lic.dataDir);
  const adminTokens = { issuer: dev.issuer, audience: dev.audience, jwks: dev.jwks, rolesClaim: "roles", dev: true };
  const tls = async (name: string) => {
    const c = await pki.service(name);
    return { certPem: c.certPem, keyPem: c.keyPem, caPem: pki.ca.certPem, source: "files" as const };
  };
  const common = (db: TestDatabaseOptions) => ({ host: "127.0.0.1", port: 0, dataDir: db.dataDir, databaseUrl: db.databaseUrl, databaseSchema: db.schema });
  const closers: Array<() => Promise<unknown>> = [];
  try {
    const signingKeys = await startTestSigningKeys({ pki, db: dbs.sk, adminTokens, tokenIssuer: ISSUER });
    closers.push(() => signingKeys.close());
    // Licensing and fleet-sweep run as processes of their own, as in production: fleet-sweep's
    // own work (its run lock, progress and report writes, its side of each call) overlaps
    // licensing's pages on the other core instead of taking turns with them on one event loop.
    const licensing = await startChild("licensing", {
      app: "licensing",
      ...common(dbs.lic),
      trustDomain: pki.trustDomain,
      tls: await tls("licensing"),
      adminTokens,
      logLevel: "silent",
      signingKeysUrl: signingKeys.url,
      tokenIssuer: ISSUER,
      replicaId: "bench",
    });
    closers.push(() => licensing.close());
    const sweepTls = await tls("fleet-sweep");
    // Two fleet-sweep replicas on one database (so one run lock): the default, ranges side by
    // side, and one range at a time.
    const sweeper = async (parallelism: number) => {
      const app = await startChild("fleet-sweep", {
        port: 0,
        trustDomain: pki.trustDomain,
        tls: sweepTls,
        adminTokens: { issuer: dev.issuer, audience: dev.audience, jwks: dev.jwks },
        database: { databaseUrl: dbs.sweep.databaseUrl, dataDir: dbs.sweep.dataDir, schema: dbs.sweep.schema },
        licensingUrl: licensing.url,
        sweepIntervalMs: null,
        pageSize: PAGE_SIZE,
        parallelism,
        logLevel: "silent",
      });
      closers.push(() => app.close());
      return createAdminClient(FleetSweepService, {
        baseUrl: app.url,
        caPem: pki.ca.certPem,
        token: () => dev.mint({ subject: "bench", roles: ["support"], ttlSeconds: 3_600 }),
        retries: 0,
        timeoutMs: 30 * 60_000,
      });
    };
    const client = await sweeper(DEFAULT_SWEEP_PARALLELISM);
    const serial = await sweeper(1);
    const sql = (q: string, params: unknown[] = []) => rawQuery(dbs.lic, q, params);
    const bare = await heldConnection(dbs.lic);
    closers.push(() => bare.close());
    const at = new Date();
    const date = (d: Date) => (pg ? d.toISOString() : d.getTime());

    const seeding = performance.now();
    await seedFleet(dbs.lic, count, at, { every: STALE_EVERY, ms: STALE_MS });
    if (pg) await sql("vacuum analyze deployment");
    console.error(`  seeded ${count.toLocaleString("en-US")} deployments (${pg ? "PostgreSQL" : "SQLite"}) in ${Math.round(performance.now() - seeding)} ms`);

    // Interleaved rounds, medians reported: one statement's time swings with checkpoints
    // and autovacuum, and a single pair of runs read as anything from 0.3 to 0.5.
    // A round: the baseline (the same rows moved ACTIVE → GRACE by one set-based statement), put
    // back; the sweep; the idempotent re-run over the unchanged fleet; put back; the sweep one
    // range at a time; put back.
    const stale = date(new Date(at.getTime() - STALE_MS / 2));
    const p = (n: number) => (pg ? `$${n}` : "?");
    const putBack = async () => {
      await sql(`update deployment set state = 'ACTIVE', lock_reason = null, version = version + 1 where state = 'GRACE'`);
      if (pg) await sql("vacuum analyze deployment");
    };
    const sweepOnce = async (c: typeof client) => {
      const t = performance.now();
      const first = await c.sweep({ pageSize: PAGE_SIZE });
      const ms = performance.now() - t;
      const moved = first.sweep?.transitions.reduce((n, x) => n + Number(x.count), 0) ?? 0;
      if (first.sweep?.status !== SweepStatus.SUCCEEDED || moved !== count / STALE_EVERY) {
        throw new Error(`sweep did not apply the expected ${count / STALE_EVERY} transitions: status ${first.sweep?.status}, ${moved} applied, error ${first.sweep?.error}`);
      }
      return ms;
    };
    const rounds: Array<{ bareMs: number; sweepMs: number; rerunMs: number; serialMs: number }> = [];
    for (let round = 1 - WARMUP_ROUNDS; round <= roundCount; round++) {
      let t = performance.now();
      await bare.run(
        `update deployment set state = 'GRACE', lock_reason = null, state_changed_at = ${p(1)}, updated_at = ${p(2)}, version = version + 1 where last_seen_at < ${p(3)}`,
        [date(at), date(at), stale],
      );
      const bareMs = performance.now() - t;
      await putBack();

      const sweepMs = await sweepOnce(client);
      t = performance.now();
      const again = await client.sweep({ pageSize: PAGE_SIZE });
      const rerunMs = performance.now() - t;
      if (again.sweep?.transitions.length !== 0) throw new Error("the re-run over an unchanged fleet made transitions");
      await putBack();
      // SQLite's SplitFleet does not split (one writer): there the default already runs one range.
      const serialMs = pg ? await sweepOnce(serial) : sweepMs;
      if (pg) await putBack();
      if (round > 0) rounds.push({ bareMs, sweepMs, rerunMs, serialMs });
      console.error(
        `  ${round > 0 ? `round ${round}` : "warm-up (not counted)"}: sweep ${Math.round(sweepMs)} ms (${count / STALE_EVERY} transitions${pg ? `, ${DEFAULT_SWEEP_PARALLELISM} ranges side by side` : ""}), bare UPDATE ${Math.round(bareMs)} ms, ` +
          `re-run ${Math.round(rerunMs)} ms${pg ? `, one range at a time ${Math.round(serialMs)} ms` : ""}`,
      );
    }
    const bareMs = median(rounds.map((r) => r.bareMs));
    const sweepMs = median(rounds.map((r) => r.sweepMs));
    const rerunMs = median(rounds.map((r) => r.rerunMs));
    const serialMs = median(rounds.map((r) => r.serialMs));

    const n = `${count.toLocaleString("en-US")} deployments, ${pg ? "PostgreSQL" : "SQLite"}`;
    const baseline = `bare set-based UPDATE of the same ${(count / STALE_EVERY).toLocaleString("en-US")} rows`;
    const ranges = pg ? `, ${DEFAULT_SWEEP_PARALLELISM} ranges side by side` : "";
    return [
      {
        name: `sweep, 10% change${ranges} (${n}; median of ${roundCount}; ms, lower is better)`,
        value: sweepMs,
        unit: "ms",
        baseline,
        baselineValue: bareMs,
        ratio: bareMs / sweepMs,
        goal: "≥ 0.5 (within 2×)",
      },
      ...(pg
        ? [
            {
              name: `sweep, 10% change, one range at a time (${n}; median of ${roundCount}; ms, lower is better)`,
              value: serialMs,
              unit: "ms",
              baseline,
              baselineValue: bareMs,
              ratio: bareMs / serialMs,
            },
          ]
        : []),
      {
        name: `idempotent re-run, 0 changes (${n}; median of ${roundCount}; ms, lower is better)`,
        value: rerunMs,
        unit: "ms",
        baseline,
        baselineValue: bareMs,
        ratio: bareMs / rerunMs,
      },
    ];
  } finally {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    for (const db of Object.values(dbs)) await db.cleanup().catch(() => undefined);
  }
}

/** What a child process starts: licensing, or fleet-sweep with its admin-token verifier's settings (JSON over IPC). */
type ChildRequest =
  | { app: "licensing"; config: Parameters<typeof startLicensing>[0] }
  | { app: "fleet-sweep"; config: Omit<Parameters<typeof startFleetSweep>[0], "adminTokens"> & { adminTokens: Parameters<typeof createAdminTokenVerifier>[0] } };

/** Starts an app in a child process of its own; resolves with its URL once it listens. */
async function startChild<A extends ChildRequest["app"]>(app: A, config: Extract<ChildRequest, { app: A }>["config"]): Promise<{ url: string; close(): Promise<void> }> {
  const child = forkBenchChild(import.meta.url, "--serve-app");
  const { url } = await ask<{ url: string }>(child, { app, config });
  return { url, close: () => stop(child) };
}

/** Child: starts the app it is told to, answers its URL, and closes it on SIGTERM. */
async function serveApp(): Promise<void> {
  const req = await new Promise<ChildRequest>((resolve) => process.once("message", (m) => resolve(m as ChildRequest)));
  const app =
    req.app === "licensing"
      ? await startLicensing(req.config)
      : await startFleetSweep({ ...req.config, adminTokens: createAdminTokenVerifier(req.config.adminTokens) });
  process.once("SIGTERM", () => void app.close().finally(() => process.exit(0)));
  process.send?.({ url: app.url });
}

// Run directly (`node --conditions=source --import tsx tools/bench/sweep.ts`) as well as from main.ts.
const entry = process.argv[1] ? fileURLToPath(import.meta.url) === process.argv[1] : false;
if (process.argv[2] === "--serve-app") await serveApp();
else if (entry) printResults(await benchSweep());
