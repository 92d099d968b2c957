/**
 * `npm run bench -- signing`: Sign RPC throughput over mTLS (gRPC, the licensing service's
 * certificate, 64 concurrent callers, ~3 s) against raw Ed25519 `crypto.sign` throughput
 * measured in the same run on the same machine. Goal: ratio ≥ 0.5 (docs/design.md §11).
 *
 * The service runs in a child process, as it does in production (licensing calls it over the
 * network), so client and server do not share one event loop; raw `crypto.sign` runs on one
 * thread. Request logging is at `warn` so the figure is the RPC path, not terminal output.
 * Runnable alone: `node --conditions=source --import tsx tools/bench/signing.ts`.
 */
import { fork, type ChildProcess } from "node:child_process";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { generateKeyPairSync, randomBytes, sign } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { SigningKeyService } from "@lcp/proto/signing/v1/signing_key_service_pb";
import { createClient } from "@lcp/rpc";
import { createTestPki } from "@lcp/testing/pki";
import { measureRate, printResults, type BenchResult } from "./result.js";

const CONCURRENCY = 64;
const DURATION_MS = 3_000;
const WARMUP_MS = 500;

// What licensing signs: a licence's claims (the service adds iss and iat).
const CLAIMS = {
  sub: "0193a5b2-7c1e-7d2a-9f3e-2b4c6d8e0f11",
  dep: "0193a5b2-7c1e-7d2a-9f3e-2b4c6d8e0f12",
  ent: ["imaging", "reporting", "archive"],
  nbf: 1_780_000_000,
  exp: 1_811_536_000,
  jti: "0193a5b2-7c1e-7d2a-9f3e-2b4c6d8e0f13",
};

/** Raw Ed25519 signatures per second on this thread, over a token-sized input. */
function rawSignRate(durationMs: number): number {
  const { privateKey } = generateKeyPairSync("ed25519");
  const data = Buffer.from(`${Buffer.from(JSON.stringify({ alg: "EdDSA", typ: "license+jwt", kid: "k".repeat(43) })).toString("base64url")}.${Buffer.from(JSON.stringify({ ...CLAIMS, iss: "https://lcp.local/licensing", iat: 1_780_000_000 })).toString("base64url")}`);
  let done = 0;
  const start = performance.now();
  const deadline = start + durationMs;
  while (performance.now() < deadline) {
    for (let i = 0; i < 100; i++) sign(null, data, privateKey);
    done += 100;
  }
  return done / ((performance.now() - start) / 1000);
}

/** What the parent hands the child server: where to keep data and the TLS material to listen with. */
interface ServeRequest {
  dataDir: string;
  certPem: string;
  keyPem: string;
  caPem: string;
  trustDomain: string;
}

/** What the child reports once listening. */
interface ServeReady {
  /** The signing-keys app. */
  url: string;
  /** A bare connect-node server (no auth, logging or storage) answering Sign with a constant: the transport's ceiling. */
  bareUrl: string;
}

/** Starts signing-keys (and the bare reference server) in a child process (this file, with --serve). */
async function startServer(request: ServeRequest): Promise<ServeReady & { child: ChildProcess }> {
  const child = fork(fileURLToPath(import.meta.url), ["--serve"], {
    execArgv: ["--conditions=source", "--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  child.send(request);
  const ready = await new Promise<ServeReady>((resolve, reject) => {
    child.once("message", (m) => resolve(m as ServeReady));
    child.once("exit", (code) => reject(new Error(`signing-keys bench server exited with ${code}`)));
  });
  return { ...ready, child };
}

/** Runs the signing benchmark and returns its figures. */
export async function benchSigning(): Promise<BenchResult[]> {
  const pki = await createTestPki();
  const dataDir = mkdtempSync(join(tmpdir(), "lcp-bench-signing-"));
  const own = await pki.service("signing-keys");
  const { url, bareUrl, child } = await startServer({
    dataDir,
    certPem: own.certPem,
    keyPem: own.keyPem,
    caPem: pki.ca.certPem,
    trustDomain: pki.trustDomain,
  });
  try {
    const cert = await pki.service("licensing");
    // CPU time of both processes, so the figures can also be read as cost per call, which a
    // busy machine distorts far less than throughput.
    const childCpu = () =>
      new Promise<number>((resolve) => {
        child.once("message", (m) => resolve((m as { cpuMicros: number }).cpuMicros));
        child.send("cpu");
      });
    const cpuNow = async () => {
      const own = process.cpuUsage();
      return own.user + own.system + (await childCpu());
    };
    let lastCpuPerCall = 0;
    const rate = async (baseUrl: string, protocol: "grpc" | "connect") => {
      // The licensing service's client, exactly as it calls Sign (createClient, its certificate).
      const client = createClient(SigningKeyService, {
        baseUrl,
        protocol,
        tls: { caPem: pki.ca.certPem, certPem: cert.certPem, keyPem: cert.keyPem },
        retries: 0,
      });
      const call = () => client.sign({ typ: "license+jwt", claims: CLAIMS });
      await measureRate(call, CONCURRENCY, WARMUP_MS);
      const cpuBefore = await cpuNow();
      const started = performance.now();
      const perSecond = await measureRate(call, CONCURRENCY, DURATION_MS);
      const calls = perSecond * ((performance.now() - started) / 1000);
      lastCpuPerCall = ((await cpuNow()) - cpuBefore) / calls;
      return perSecond;
    };
    const grpc = await rate(url, "grpc");
    const grpcCpuPerCall = lastCpuPerCall;
    const connect = await rate(url, "connect");
    const bare = await rate(bareUrl, "grpc");
    const rawRpc = await rawHttp2SignRate(own.certPem, own.keyPem, pki.ca.certPem);
    rawSignRate(WARMUP_MS);
    const rawCpuBefore = process.cpuUsage();
    const raw = rawSignRate(DURATION_MS);
    const rawCpu = process.cpuUsage(rawCpuBefore);
    const rawCpuPerSign = (rawCpu.user + rawCpu.system) / (raw * (DURATION_MS / 1000));
    const vsRaw = (name: string, value: number, goal?: string): BenchResult => ({
      name,
      value,
      unit: "ops/s",
      baseline: "raw crypto.sign Ed25519, 1 thread",
      baselineValue: raw,
      ratio: value / raw,
      ...(goal ? { goal } : {}),
    });
    return [
      vsRaw(`Sign RPC over mTLS (gRPC), ${CONCURRENCY} callers`, grpc, "≥ 0.5"),
      vsRaw(`Sign RPC over mTLS (Connect protocol), ${CONCURRENCY} callers`, connect),
      vsRaw(`ceiling: bare connect-node gRPC no-op unary, mTLS, ${CONCURRENCY} callers`, bare),
      vsRaw(`ceiling: raw node:http2 request + crypto.sign, TLS, no RPC stack, ${CONCURRENCY} callers`, rawRpc),
      {
        name: "CPU per Sign call, client + server (gRPC; ratio = baseline/value)",
        value: grpcCpuPerCall,
        unit: "µs",
        baseline: "raw crypto.sign Ed25519, CPU per signature",
        baselineValue: rawCpuPerSign,
        ratio: rawCpuPerSign / grpcCpuPerCall,
      },
    ];
  } finally {
    child.kill("SIGTERM");
    await new Promise((resolve) => child.once("exit", resolve));
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/**
 * The ceiling of ANY RPC stack on this machine: a bare node:http2 POST whose handler signs the
 * body, client and server in this process. If this alone is far below 0.5× raw signing, the
 * goal is out of reach for one-signature-per-call RPCs here, whatever the framework.
 */
async function rawHttp2SignRate(certPem: string, keyPem: string, caPem: string): Promise<number> {
  const { privateKey } = generateKeyPairSync("ed25519");
  const server = http2.createSecureServer({ cert: certPem, key: keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => res.end(sign(null, Buffer.concat(chunks), privateKey)));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const session = http2.connect(`https://localhost:${(server.address() as AddressInfo).port}`, { ca: caPem });
  const body = randomBytes(200);
  const call = () =>
    new Promise<void>((resolve, reject) => {
      const stream = session.request({ ":method": "POST", ":path": "/sign" });
      stream.on("data", () => {});
      stream.on("end", resolve);
      stream.on("error", reject);
      stream.end(body);
    });
  try {
    await measureRate(call, CONCURRENCY, WARMUP_MS);
    return await measureRate(call, CONCURRENCY, DURATION_MS);
  } finally {
    session.close();
    await new Promise((resolve) => server.close(resolve));
  }
}

/** The child side: the real signing-keys app with the test PKI, reporting its URL to the parent. */
async function serve(): Promise<void> {
  const { dataDir, certPem, keyPem, caPem, trustDomain } = await new Promise<ServeRequest>((resolve) =>
    process.once("message", (m) => resolve(m as ServeRequest)),
  );
  const { startSigningKeys } = await import("@lcp/signing-keys/app");
  const { ensureDevAdminIssuer } = await import("@lcp/tokens");
  const dev = await ensureDevAdminIssuer(dataDir);
  const app = await startSigningKeys({
    app: "signing-keys",
    host: "127.0.0.1",
    port: 0,
    dataDir,
    trustDomain,
    tls: { certPem, keyPem, caPem, source: "files" },
    adminTokens: { issuer: dev.issuer, audience: dev.audience, jwks: dev.jwks, rolesClaim: "roles", dev: true },
    logLevel: "warn",
    kek: { kind: "configured", key: new Uint8Array(randomBytes(32)) },
    tokenIssuer: "https://lcp.local/licensing",
  });
  // The reference: the same transport with nothing of ours in it (no authn, policy, logging or storage).
  const bare = http2.createSecureServer(
    { key: keyPem, cert: certPem, ca: caPem, requestCert: true, rejectUnauthorized: false },
    connectNodeAdapter({
      routes: (router) => router.rpc(SigningKeyService.method.sign, async () => ({ token: "x", kid: "k" })),
    }),
  );
  await new Promise<void>((resolve) => bare.listen(0, "127.0.0.1", resolve));
  const ready: ServeReady = { url: app.url, bareUrl: `https://localhost:${(bare.address() as AddressInfo).port}` };
  process.send?.(ready);
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
  printResults(await benchSigning());
}
