/**
 * The heartbeat bench's server child (heartbeat.ts `--serve-*`): signing-keys, licensing with its
 * activated boxes, or the raw `node:http2` echo, each reporting its RSS, CPU and event-loop stalls.
 */
import { randomBytes } from "node:crypto";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { constants as perfConstants, PerformanceObserver } from "node:perf_hooks";
import { create, toBinary } from "@bufbuild/protobuf";
import { HeartbeatRequestSchema } from "@lcp/proto/licensing/v1/appliance_service_pb";
import { frame } from "@lcp/rpc/grpc-frame";
import { mainThreadSchedstat } from "./main-thread.js";
import { coresBetween, type ServerStalls, type Stall } from "./heartbeat-stats.js";

/** A box the load process streams as. */
export interface BoxIdentity {
  certPem: string;
  keyPem: string;
  /** The encoded gRPC frame of its hello. */
  hello: string;
}

/** What a server child is told at start. */
export interface ServeRequest {
  dataDir: string;
  boxes: number;
  pki: { caPem: string; certPem: string; keyPem: string; trustDomain: string; sk: { certPem: string; keyPem: string } };
  /** Listen here (a restart takes its predecessor's port); 0 picks one. */
  port: number;
  /** licensing: the signing-keys child's URL. */
  signingKeysUrl?: string;
  /** echo: its TLS session-ticket keys (base64, 48 bytes), the same across its restart as licensing's. */
  echoTicketKeys?: string;
}

/**
 * Server child: signing-keys, licensing, or the raw echo. Answers "rss" with its RSS after a GC
 * and "cpu" with its CPU time. Signing-keys is a process of its own so the reconnect phase can
 * SIGKILL licensing alone and restart it on the same port and data dir, as a supervisor would.
 */
export async function serve(kind: "licensing" | "signing-keys" | "echo"): Promise<void> {
  const req = await new Promise<ServeRequest>((resolve) => process.once("message", (m) => resolve(m as ServeRequest)));
  // A CPU profile's sample times are this clock's (CLOCK_MONOTONIC, µs): the anchor maps them to wall-clock time.
  if (process.env.HEARTBEAT_BENCH_PROFILE_DIR) console.error(JSON.stringify({ kind, pid: process.pid, clockAnchor: { wallMs: Date.now(), monoUs: Number(process.hrtime.bigint() / 1000n) } }));
  let close: () => Promise<void>;
  let ready: Record<string, unknown>;
  if (kind === "echo") {
    // Like licensing: client certificates requested and verified, not demanded at the handshake (the
    // boxes' certificates chain to the appliance CA, which this echo does not hold).
    // The same TLS treatment as licensing's listener: ticket keys that survive the restart, the
    // same ticket lifetime and a fixed session context, and the same handshake timeout.
    const { DEFAULT_TICKET_LIFETIME_S, HANDSHAKE_TIMEOUT_MS } = await import("@lcp/rpc");
    const server = http2.createSecureServer({
      key: req.pki.keyPem, cert: req.pki.certPem, ca: req.pki.caPem, requestCert: true, rejectUnauthorized: false,
      ticketKeys: Buffer.from(req.echoTicketKeys!, "base64"), sessionTimeout: DEFAULT_TICKET_LIFETIME_S, sessionIdContext: "lcp-bench-echo", handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    });
    server.on("stream", (stream) => {
      stream.respond({ ":status": 200, "content-type": "application/grpc" });
      // Echo every chunk (whole gRPC frames of one small message each).
      stream.on("data", (chunk: Buffer) => stream.write(chunk));
      stream.on("end", () => stream.end());
      stream.on("error", () => undefined);
    });
    server.on("session", (s) => s.on("error", () => undefined));
    await new Promise<void>((resolve) => server.listen(req.port, "127.0.0.1", resolve));
    ready = { url: `https://localhost:${(server.address() as AddressInfo).port}` };
    close = () => new Promise((resolve) => server.close(() => resolve()));
  } else {
    const { ensureDevAdminIssuer } = await import("@lcp/tokens");
    const dev = await ensureDevAdminIssuer(req.dataDir);
    const adminTokens = { issuer: dev.issuer, audience: dev.audience, jwks: dev.jwks, rolesClaim: "roles", dev: true };
    const tls = (c: { certPem: string; keyPem: string }) => ({ certPem: c.certPem, keyPem: c.keyPem, caPem: req.pki.caPem, source: "files" as const });
    if (kind === "signing-keys") {
      const { startSigningKeys } = await import("@lcp/signing-keys/app");
      const sk = await startSigningKeys({
        app: "signing-keys", host: "127.0.0.1", port: req.port, dataDir: join(req.dataDir, "sk"), trustDomain: req.pki.trustDomain, tls: tls(req.pki.sk),
        adminTokens, logLevel: "warn", kek: { kind: "configured", key: new Uint8Array(randomBytes(32)) }, tokenIssuer: "https://lcp.local/licensing",
      });
      process.send?.({ url: sk.url });
      process.once("SIGTERM", () => void sk.close().finally(() => process.exit(0)));
      return;
    }
    const { startLicensing } = await import("@lcp/licensing/app");
    const { createAdminClient, createClient, loadTicketSecret } = await import("@lcp/rpc");
    const { LicensingService } = await import("@lcp/proto/licensing/v1/licensing_service_pb");
    const { ApplianceService } = await import("@lcp/proto/licensing/v1/appliance_service_pb");
    const { DeploymentKind } = await import("@lcp/proto/licensing/v1/types_pb");
    const { applianceSpiffeId, generateKeyAndCsr } = await import("@lcp/pki");
    const app = await startLicensing({
      app: "licensing", host: "127.0.0.1", port: req.port, dataDir: req.dataDir, trustDomain: req.pki.trustDomain, tls: tls(req.pki),
      adminTokens, logLevel: "warn", signingKeysUrl: req.signingKeysUrl!, tokenIssuer: "https://lcp.local/licensing", replicaId: "bench",
      heartbeatLimits: { messagesPerSecond: 1e9, burst: 1e9 },
      // As main.ts does (readLicensingConfig): the secret in the data dir, so the restart resumes.
      sessionTicketSecret: await loadTicketSecret({ dataDir: req.dataDir, variable: "TLS_TICKET_KEY_FILE" }),
    });
    // Activate the boxes the load process will stream as (each with its own key and certificate).
    const admin = createAdminClient(LicensingService, { baseUrl: app.url, caPem: req.pki.caPem, token: () => dev.mint({ subject: "bench", roles: ["super_admin"], ttlSeconds: 3600 }), retries: 0 });
    const anon = createClient(ApplianceService, { baseUrl: app.url, tls: { caPem: req.pki.caPem }, retries: 0 });
    const boxes: BoxIdentity[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < req.boxes) {
          next++;
          const { deployment, license } = await admin.provisionDeployment({ name: `bench-${next}`, customer: "bench", kind: DeploymentKind.ON_PREM, entitlements: ["x"] });
          const fingerprint = `bench-box-${randomBytes(4).toString("hex")}`;
          const { keyPem, csrPem } = await generateKeyAndCsr({ commonName: deployment!.id, spiffeId: applianceSpiffeId(req.pki.trustDomain, deployment!.id) });
          const act = await anon.activate({ licenseId: license!.id, licenseToken: license!.token, fingerprint, csrPem, agentVersion: "bench/1" });
          // Like the SDK, a box reports the key ids of the JWKS it holds, so its hello is not
          // answered with a REFRESH_KEYS it does not need.
          const keyIds = (JSON.parse(act.jwksJson) as { keys: Array<{ kid?: string }> }).keys.flatMap((k) => (k.kid ? [k.kid] : []));
          const hello = create(HeartbeatRequestSchema, { kind: { case: "hello", value: { licenseId: license!.id, fingerprint, lastLeaseSeq: 1n, agentVersion: "bench/1", keyIds } } });
          boxes.push({ certPem: act.certificatePem, keyPem, hello: frame(toBinary(HeartbeatRequestSchema, hello)).toString("base64") });
        }
      }),
    );
    ready = { url: app.url, boxes };
    close = () => app.close();
  }
  // The server's own event-loop stalls (≥ 10 ms late on a 5 ms timer), with the wall-clock time
  // they ended, so the parent can ask what this process did during the load's interval phase. For
  // each, what the main thread did meanwhile (its schedstat): ran on a CPU (JS, GC, a synchronous
  // call), waited for a CPU (the machine was saturated), or neither (blocked, or idle).
  const stalls: Stall[] = [];
  // Garbage collections (wall-clock end, duration, whether a full mark-compact), to tell how much
  // of a stall was GC.
  const collections: Array<{ end: number; ms: number; major: boolean }> = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
      collections.push({ end: performance.timeOrigin + e.startTime + e.duration, ms: e.duration, major: kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR });
    }
  }).observe({ entryTypes: ["gc"] });
  const usage: Array<[number, number]> = [];
  let lastTick = performance.now();
  let lastSched = mainThreadSchedstat();
  setInterval(() => {
    const tickAt = performance.now();
    const late = tickAt - lastTick - 5;
    const sched = mainThreadSchedstat();
    if (late >= 10) {
      const onCpuMs = sched && lastSched ? (sched.onCpuNs - lastSched.onCpuNs) / 1e6 : NaN;
      const waitingMs = sched && lastSched ? (sched.waitingNs - lastSched.waitingNs) / 1e6 : NaN;
      stalls.push({ at: Date.now(), ms: late, onCpuMs, waitingMs });
    }
    lastTick = tickAt;
    lastSched = sched;
  }, 5).unref();
  // The whole process's CPU time (every thread: GC helpers, libuv's pool) and the main thread's
  // (the stall timer's last reading, at most 5 ms old), once a second.
  const mainUsage: Array<[number, number]> = [];
  setInterval(() => {
    const { user, system } = process.cpuUsage();
    usage.push([Date.now(), (user + system) / 1000]);
    if (lastSched) mainUsage.push([Date.now(), lastSched.onCpuNs / 1e6]);
  }, 1000).unref();
  process.send?.(ready);
  process.on("message", (m) => {
    if (typeof m === "object" && m !== null && "stallsBetween" in m) {
      const [from, to] = (m as { stallsBetween: [number, number] }).stallsBetween;
      const inWindow = stalls.filter((x) => x.at >= from && x.at <= to);
      const over50 = inWindow.filter((x) => x.ms >= 50);
      const sum = (f: (x: Stall) => number) => over50.reduce((n, x) => n + f(x), 0);
      // The collections that ended inside a stall (from its last on-time tick to its late one).
      const gcDuring = (x: Stall) => collections.filter((c) => c.end >= x.at - x.ms - 5 && c.end <= x.at);
      const gcIn = over50.flatMap(gcDuring);
      const longest = inWindow.reduce<Stall | null>((a, x) => (a === null || x.ms > a.ms ? x : a), null);
      const bySecond = Array.from({ length: Math.ceil((to - from) / 1000) }, () => 0);
      for (const x of over50) bySecond[Math.min(bySecond.length - 1, Math.floor((x.at - x.ms - from) / 1000))]! += 1;
      process.send?.({
        longestAtS: longest ? (longest.at - longest.ms - from) / 1000 : 0,
        longestGcMs: longest ? gcDuring(longest).reduce((n, c) => n + c.ms, 0) : 0,
        over50BySecond: bySecond,
        over50GcMs: gcIn.reduce((n, c) => n + c.ms, 0),
        over50MajorGcs: gcIn.filter((c) => c.major).length,
        maxMs: Math.max(0, ...inWindow.map((x) => x.ms)),
        over50: over50.length,
        over50Ms: sum((x) => x.ms),
        over50OnCpuMs: sum((x) => x.onCpuMs),
        over50WaitingMs: sum((x) => x.waitingMs),
        cores: coresBetween(usage, from, to),
        mainThreadCores: coresBetween(mainUsage, from, to),
      } satisfies ServerStalls);
      return;
    }
    if (m === "cpu") {
      const { user, system } = process.cpuUsage();
      process.send?.({ cpuMicros: user + system });
      return;
    }
    if (m !== "rss") return;
    (globalThis as { gc?: () => void }).gc?.();
    setTimeout(() => {
      const { rss, heapUsed, heapTotal, external } = process.memoryUsage();
      process.send?.({ rss, heapUsed, heapTotal, external });
    }, 200);
  });
  process.once("SIGTERM", () => void close().finally(() => process.exit(0)));
}
