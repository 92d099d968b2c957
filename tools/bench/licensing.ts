/**
 * `npm run bench -- licensing`: IssueLicense and Activate throughput and p99 latency through the
 * real licensing service (over TLS, admin bearer token / anonymous enrolment) backed by a real
 * signing-keys, on SQLite and — when DATABASE_URL is set — PostgreSQL, beside raw Ed25519
 * `crypto.sign` throughput measured in the same run on the same machine.
 *
 * Each service runs in its own child process, as in production (licensing calls signing-keys
 * over mTLS), so neither shares an event loop with the load generator. An IssueLicense signs one
 * licence token and commits one compare-and-set transaction; an Activate verifies the licence
 * token, has signing-keys issue a certificate from the box's CSR, signs a lease and commits the
 * binding — so both are bounded by signing and the database, which is why the baseline is the
 * signature itself. Request logging is at `warn`.
 * Runnable alone: `node --conditions=source --import tsx tools/bench/licensing.ts`.
 */
import { fork, type ChildProcess } from "node:child_process";
import { generateKeyPairSync, randomBytes, sign } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Client } from "@connectrpc/connect";
import { applianceSpiffeId, generateKeyAndCsr } from "@lcp/pki";
import { ApplianceService } from "@lcp/proto/licensing/v1/appliance_service_pb";
import { LicensingService } from "@lcp/proto/licensing/v1/licensing_service_pb";
import { DeploymentKind, type License } from "@lcp/proto/licensing/v1/types_pb";
import { createAdminClient, createClient } from "@lcp/rpc";
import { createTestPki, type TestPki } from "@lcp/testing/pki";
import { ensureDevAdminIssuer } from "@lcp/tokens";
import pg from "pg";
import { printResults, type BenchResult } from "./result.js";

const CONCURRENCY = 16;
const ISSUE_DURATION_MS = 3_000;
const WARMUP_MS = 500;
/** Activations are one-shot per box (a fresh licence each), so they are counted, not timed. */
const ACTIVATIONS = 300;
const ISSUER = "https://lcp.local/licensing";

/** Raw Ed25519 signatures per second on this thread, over a licence-token-sized input. */
function rawSignRate(durationMs: number): number {
  const { privateKey } = generateKeyPairSync("ed25519");
  const data = Buffer.from("h".repeat(60) + "." + "p".repeat(300));
  let done = 0;
  const start = performance.now();
  const deadline = start + durationMs;
  while (performance.now() < deadline) {
    for (let i = 0; i < 100; i++) sign(null, data, privateKey);
    done += 100;
  }
  return done / ((performance.now() - start) / 1000);
}

/** What a child is asked to serve. */
export interface ServeRequest {
  app: "signing-keys" | "licensing";
  dataDir: string;
  databaseUrl?: string;
  schema?: string;
  certPem: string;
  keyPem: string;
  caPem: string;
  trustDomain: string;
  signingKeysUrl?: string;
}

/** Starts one app in a child process (this file with --serve). */
export async function startChild(request: ServeRequest): Promise<{ url: string; child: ChildProcess }> {
  const child = fork(fileURLToPath(import.meta.url), ["--serve"], {
    execArgv: ["--conditions=source", "--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  child.send(request);
  const url = await new Promise<string>((resolve, reject) => {
    child.once("message", (m) => resolve((m as { url: string }).url));
    child.once("exit", (code) => reject(new Error(`${request.app} bench server exited with ${code}`)));
  });
  return { url, child };
}

/** signing-keys and licensing as children in a fresh folder, with a super_admin client; `stop()` ends both. */
export interface LicensingPair {
  readonly pki: TestPki;
  readonly signing: { url: string; child: ChildProcess };
  readonly licensing: { url: string; child: ChildProcess };
  /** A super_admin bearer token (1 h) from the dev admin issuer both children trust. */
  readonly token: string;
  readonly admin: Client<typeof LicensingService>;
  /** Stops both, removes the folder and drops their PostgreSQL schemas. */
  stop(): Promise<void>;
}

/**
 * Starts a {@link LicensingPair}; `name` names its temporary folder. On SQLite unless
 * `databaseUrl` is given: then each app gets a schema of its own there.
 */
export async function startLicensingPair(name: string, options: { pki?: TestPki; databaseUrl?: string | undefined } = {}): Promise<LicensingPair> {
  const pki = options.pki ?? (await createTestPki());
  const { databaseUrl } = options;
  const dataDir = mkdtempSync(join(tmpdir(), `lcp-bench-${name}-`));
  const suffix = randomBytes(4).toString("hex");
  const schemas = { sk: `bench_sk_${suffix}`, lic: `bench_lic_${suffix}` };
  const children: ChildProcess[] = [];
  const stop = async () => {
    for (const child of children.reverse()) await stopChild(child);
    rmSync(dataDir, { recursive: true, force: true });
    if (databaseUrl) {
      const client = new pg.Client({ connectionString: databaseUrl });
      await client.connect();
      for (const schema of Object.values(schemas)) await client.query(`drop schema if exists "${schema}" cascade`);
      await client.end();
    }
  };
  try {
    const common = { dataDir, databaseUrl, caPem: pki.ca.certPem, trustDomain: pki.trustDomain };
    const sk = await pki.service("signing-keys");
    const signing = await startChild({ app: "signing-keys", ...common, schema: schemas.sk, certPem: sk.certPem, keyPem: sk.keyPem });
    children.push(signing.child);
    const own = await pki.service("licensing");
    const licensing = await startChild({ app: "licensing", ...common, schema: schemas.lic, certPem: own.certPem, keyPem: own.keyPem, signingKeysUrl: signing.url });
    children.push(licensing.child);
    // Both children share the dev admin issuer in dataDir (ensureDevAdminIssuer is idempotent).
    const token = await (await ensureDevAdminIssuer(dataDir)).mint({ subject: "bench", roles: ["super_admin"], ttlSeconds: 3600 });
    const admin = createAdminClient(LicensingService, { baseUrl: licensing.url, caPem: pki.ca.certPem, token, retries: 0 });
    return { pki, signing, licensing, token, admin, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** The child's CPU time so far (user + system, µs): per-call cost survives a busy machine better than throughput. */
export function childCpu(child: ChildProcess): Promise<number> {
  return new Promise<number>((resolve) => {
    child.once("message", (m) => resolve((m as { cpuMicros: number }).cpuMicros));
    child.send("cpu");
  });
}

export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  child.kill("SIGTERM");
  await new Promise((resolve) => child.once("exit", resolve));
}

/** Runs `call` with `concurrency` callers until `until()` says stop; returns ops/s and the p99 latency (ms). */
export async function load(call: (i: number) => Promise<unknown>, concurrency: number, until: (done: number, elapsedMs: number) => boolean) {
  const latencies: number[] = [];
  let started = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (!until(started, performance.now() - t0)) {
        const i = started++;
        const t = performance.now();
        await call(i);
        latencies.push(performance.now() - t);
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  const p99 = latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))] ?? 0;
  return { rate: latencies.length / elapsed, p99, count: latencies.length };
}

/** One driver's figures: IssueLicense and Activate rate and p99. */
async function benchDriver(pki: TestPki, driver: "sqlite" | "postgresql", raw: number): Promise<BenchResult[]> {
  const { signing, licensing, admin, stop } = await startLicensingPair(`licensing-${driver}`, {
    pki,
    databaseUrl: driver === "postgresql" ? process.env.DATABASE_URL : undefined,
  });
  try {
    const boxes: Client<typeof ApplianceService> = createClient(ApplianceService, {
      baseUrl: licensing.url,
      tls: { caPem: pki.ca.certPem },
      retries: 0,
    });

    // IssueLicense: round-robin over as many deployments as callers, so callers never contend on one row.
    const deployments: string[] = [];
    for (let i = 0; i < CONCURRENCY; i++) {
      const res = await admin.provisionDeployment({ name: `bench-${i}`, customer: "bench", kind: DeploymentKind.ON_PREM });
      deployments.push(res.deployment!.id);
    }
    const issue = (i: number) => admin.issueLicense({ deploymentId: deployments[i % deployments.length]!, entitlements: ["imaging"] });
    // CPU of both services per call, measured around the timed run.
    const cpu = async () => (await childCpu(licensing.child)) + (await childCpu(signing.child));
    await load(issue, CONCURRENCY, (_, ms) => ms >= WARMUP_MS);
    let cpuBefore = await cpu();
    const issued = await load(issue, CONCURRENCY, (_, ms) => ms >= ISSUE_DURATION_MS);
    const issueCpu = ((await cpu()) - cpuBefore) / issued.count;

    // Activate: one fresh on-prem deployment (auto-issued licence) and box per call, CSRs made up front.
    const fresh: { license: License; csrPem: string }[] = [];
    for (let i = 0; i < ACTIVATIONS + CONCURRENCY; i++) {
      const res = await admin.provisionDeployment({ name: `box-${i}`, customer: "bench", kind: DeploymentKind.ON_PREM });
      const id = res.deployment!.id;
      const { csrPem } = await generateKeyAndCsr({ commonName: id, spiffeId: applianceSpiffeId(pki.trustDomain, id) });
      fresh.push({ license: res.license!, csrPem });
    }
    const activate = (i: number) => {
      const box = fresh[i]!;
      return boxes.activate({ licenseId: box.license.id, licenseToken: box.license.token, fingerprint: `fp-${i}`, csrPem: box.csrPem });
    };
    await load(activate, CONCURRENCY, (n) => n >= CONCURRENCY); // warm-up: the first CONCURRENCY boxes
    cpuBefore = await cpu();
    const activated = await load((i) => activate(i + CONCURRENCY), CONCURRENCY, (n) => n >= ACTIVATIONS);
    const activateCpu = ((await cpu()) - cpuBefore) / activated.count;

    const rawMsPerSign = 1000 / raw;
    const rate = (name: string, value: number): BenchResult => ({
      name: `${name} (${driver}), ${CONCURRENCY} callers`,
      value,
      unit: "ops/s",
      baseline: "raw crypto.sign Ed25519, 1 thread",
      baselineValue: raw,
      ratio: value / raw,
    });
    const p99 = (name: string, value: number): BenchResult => ({
      name: `${name} p99 latency (${driver}; ratio = baseline/value)`,
      value,
      unit: "ms",
      baseline: "raw crypto.sign Ed25519, time per signature",
      baselineValue: rawMsPerSign,
      ratio: rawMsPerSign / value,
    });
    const rawMicrosPerSign = 1e6 / raw;
    const cpuPerCall = (name: string, value: number): BenchResult => ({
      name: `CPU per ${name}, licensing + signing-keys (${driver}; ratio = baseline/value)`,
      value,
      unit: "µs",
      baseline: "raw crypto.sign Ed25519, time per signature",
      baselineValue: rawMicrosPerSign,
      ratio: rawMicrosPerSign / value,
    });
    return [
      rate("IssueLicense", issued.rate),
      p99("IssueLicense", issued.p99),
      cpuPerCall("IssueLicense", issueCpu),
      rate("Activate", activated.rate),
      p99("Activate", activated.p99),
      cpuPerCall("Activate", activateCpu),
    ];
  } finally {
    await stop();
  }
}

/** Runs the licensing benchmark and returns its figures. */
export async function benchLicensing(): Promise<BenchResult[]> {
  const pki = await createTestPki();
  rawSignRate(WARMUP_MS);
  const raw = rawSignRate(ISSUE_DURATION_MS);
  const results = await benchDriver(pki, "sqlite", raw);
  if (process.env.DATABASE_URL) results.push(...(await benchDriver(pki, "postgresql", raw)));
  return results;
}

/** The child side: one app with the test PKI, reporting its URL to the parent. */
async function serve(): Promise<void> {
  const req = await new Promise<ServeRequest>((resolve) => process.once("message", (m) => resolve(m as ServeRequest)));
  const dev = await ensureDevAdminIssuer(req.dataDir);
  const common = {
    host: "127.0.0.1",
    port: 0,
    dataDir: req.dataDir,
    databaseUrl: req.databaseUrl,
    databaseSchema: req.schema,
    trustDomain: req.trustDomain,
    tls: { certPem: req.certPem, keyPem: req.keyPem, caPem: req.caPem, source: "files" as const },
    adminTokens: { issuer: dev.issuer, audience: dev.audience, jwks: dev.jwks, rolesClaim: "roles", dev: true },
    logLevel: "warn",
    tokenIssuer: ISSUER,
  };
  let app: { url: string; close(): Promise<void> };
  if (req.app === "signing-keys") {
    const { startSigningKeys } = await import("@lcp/signing-keys/app");
    app = await startSigningKeys({ ...common, app: "signing-keys", kek: { kind: "configured", key: new Uint8Array(randomBytes(32)) } });
  } else {
    const { startLicensing } = await import("@lcp/licensing/app");
    app = await startLicensing({ ...common, app: "licensing", signingKeysUrl: req.signingKeysUrl!, replicaId: "bench" });
  }
  process.send?.({ url: app.url });
  process.on("message", (m) => {
    if (m !== "cpu") return;
    const { user, system } = process.cpuUsage();
    process.send?.({ cpuMicros: user + system });
  });
  process.once("SIGTERM", () => void app.close().then(() => process.exit(0)));
}

const entry = process.argv[1] ? fileURLToPath(import.meta.url) === process.argv[1] : false;
if (process.argv[2] === "--serve") {
  await serve();
} else if (entry) {
  printResults(await benchLicensing());
}
