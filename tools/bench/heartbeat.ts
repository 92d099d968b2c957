/**
 * `npm run bench -- heartbeat`: the licensing Heartbeat stream at fleet scale (docs/design.md §8, §11)
 * beside a raw `node:http2` echo of the same message and concurrency, measured in the same run.
 *
 * Processes besides this one: the server under test (licensing, SQLite, real mTLS with one
 * appliance certificate per activated box), its signing-keys (a process of its own, so licensing
 * can be killed alone), the raw echo server (TLS with client certificates, echoes each gRPC
 * frame), and the LOAD process (`--load`), which opens
 * STREAMS concurrent streams, each on its own TLS connection, with a plain http2 client (so the
 * load generator's cost is the same for both servers). Per target it reports:
 * - beats/s with every stream closed-loop (one beat in flight per stream), and p50/p99 ack latency;
 * - p50/p99 ack latency with every stream beating once per INTERVAL (default 1 s, the production
 *   beat), beats spread evenly over the interval: the goal is p99 < 50 ms at 10,000 streams;
 * - server CPU per stream opened (user + system time while the load opens its streams, divided
 *   by the streams): the TLS handshake plus, for licensing, the hello (a database read);
 * - server RSS per held stream: (RSS with all streams held and idle − RSS before) / streams;
 * - during the interval phase, each server's event-loop stalls, what its main thread did in them
 *   (on a CPU or waiting for one, from Linux schedstat: V8's profile shows node's native TLS and
 *   HTTP/2 work as idle), the cores the server and its main thread used, and the machine's.
 * The stream's rate limit (10 beats/s in production) is lifted for the closed-loop phase.
 * Distinct boxes: one activated deployment per stream (activating 10,000 takes ~3 minutes);
 * `HEARTBEAT_BENCH_BOXES` spreads the streams over fewer, for a quicker run that measures less.
 *
 * Last, the kill -9 goal (`--reconnect-load`): RECONNECT_STREAMS streams held and acked,
 * the server SIGKILLed and restarted at once on the same port (licensing on the same data dir),
 * each stream redialling with the SDK's jittered backoff and offering its last TLS session ticket as
 * the SDK does (both servers keep their ticket keys across the restart: licensing in its data dir,
 * the echo from the bench); it reports kill → serving, kill → 50 %, 99 %, 100 % of the streams
 * acked again, failed attempts, how many reconnects resumed TLS, and the restarted server's CPU
 * (in all and per stream taken back), for the echo (the floor) and for licensing.
 *
 * `HEARTBEAT_BENCH_STREAMS` (default 1000; e.g. "1000,10000"; 0 runs only the reconnect phase),
 * `HEARTBEAT_BENCH_SECONDS` (5, per phase), `HEARTBEAT_BENCH_INTERVAL_MS` (1000),
 * `HEARTBEAT_BENCH_RECONNECT_STREAMS` (10000; 0 skips it), `HEARTBEAT_BENCH_RECONNECT_DEADLINE_S`
 * (180), `HEARTBEAT_BENCH_RECONNECT_SILENT_MS` (180000), `HEARTBEAT_BENCH_RECONNECT_FIRST_ATTEMPT`
 * (0 = the SDK; an experiment otherwise), `HEARTBEAT_BENCH_PROFILE_DIR` (a CPU profile of licensing;
 * each server prints a clock anchor that maps the profile's sample times to wall-clock time),
 * `HEARTBEAT_BENCH_SERVER_FLAGS` (more node flags for licensing, e.g. "--trace-gc").
 * Runnable alone: `node --conditions=source --import tsx tools/bench/heartbeat.ts`.
 */
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createSecureContext, type TLSSocket } from "node:tls";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { cpus, tmpdir } from "node:os";
import { constants as perfConstants, monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { create, toBinary } from "@bufbuild/protobuf";
import { HeartbeatRequestSchema } from "@lcp/proto/licensing/v1/appliance_service_pb";
import { printResults, type BenchResult } from "./result.js";
import { mainThreadSchedstat } from "./main-thread.js";
import { ask, forkBenchChild, stop } from "./children.js";

const STREAMS = (process.env.HEARTBEAT_BENCH_STREAMS ?? "1000").split(",").map((s) => Number(s.trim())).filter((n) => n > 0);
const SECONDS = Number(process.env.HEARTBEAT_BENCH_SECONDS ?? "5");
// One activated box per stream, as in a fleet: the hot path's per-box work (the coalesced
// last_seen write, the hello's reads, the held-stream checks) grows with boxes, not streams.
const BOXES = Number(process.env.HEARTBEAT_BENCH_BOXES ?? Infinity);
const INTERVAL_MS = Number(process.env.HEARTBEAT_BENCH_INTERVAL_MS ?? "1000");
const RECONNECT_STREAMS = Number(process.env.HEARTBEAT_BENCH_RECONNECT_STREAMS ?? "10000");
// An experiment, not the SDK: start each dropped stream's backoff at this attempt (0 = the SDK,
// whose first window is [initialMs, 2·initialMs]).
const RECONNECT_FIRST_ATTEMPT = Number(process.env.HEARTBEAT_BENCH_RECONNECT_FIRST_ATTEMPT ?? "0");
const RECONNECT_DEADLINE_S = Number(process.env.HEARTBEAT_BENCH_RECONNECT_DEADLINE_S ?? "180");
// The SDK abandons a stream silent for 3 beat intervals; the production interval is 60 s.
const RECONNECT_SILENT_MS = Number(process.env.HEARTBEAT_BENCH_RECONNECT_SILENT_MS ?? "180000");
const HEARTBEAT_PATH = "/licensing.v1.ApplianceService/Heartbeat";

/** A box the load process streams as. */
interface BoxIdentity {
  certPem: string;
  keyPem: string;
  /** The encoded gRPC frame of its hello. */
  hello: string;
}

interface LoadRequest {
  url: string;
  caPem: string;
  boxes: BoxIdentity[];
  streams: number;
  seconds: number;
  intervalMs: number;
}

interface LoadResult {
  opened: number;
  failed: number;
  beatsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Ack latency with every stream beating once per interval. */
  intervalP50Ms: number;
  intervalP99Ms: number;
  /** Beats sent in the interval phase that got no ack before it ended. */
  intervalUnanswered: number;
  /**
   * The load process's own event-loop delay in the interval phase (p99): an ack that arrives
   * while the load generator is stalled (its GC, 10,000 TLS connections of its own) is timed late
   * for either server alike — the floor under both p99s on this machine.
   */
  intervalLoadDelayP99Ms: number;
  /** Its longest stall: one stall of 100 ms delays every ack due in it, ~1 % of a 15 s window. */
  intervalLoadDelayMaxMs: number;
  /** The interval phase's measured window, wall clock (ms since the epoch). */
  intervalFrom: number;
  intervalTo: number;
}

function frame(payload: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + payload.length);
  out.writeUInt32BE(payload.length, 1);
  Buffer.from(payload).copy(out, 5);
  return out;
}

// ---------------------------------------------------------------- child processes

function forkSelf(arg: string): ChildProcess {
  // HEARTBEAT_BENCH_PROFILE_DIR: a CPU profile of the licensing server, to see where its time goes;
  // HEARTBEAT_BENCH_SERVER_FLAGS: more node flags for it (e.g. "--trace-gc").
  const licensing = arg === "--serve-licensing";
  const profile = process.env.HEARTBEAT_BENCH_PROFILE_DIR && licensing ? ["--cpu-prof", `--cpu-prof-dir=${process.env.HEARTBEAT_BENCH_PROFILE_DIR}`] : [];
  if (licensing) profile.push(...(process.env.HEARTBEAT_BENCH_SERVER_FLAGS ?? "").split(" ").filter(Boolean));
  return forkBenchChild(import.meta.url, arg, profile);
}

/** What a server child is told at start. */
interface ServeRequest {
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
async function serve(kind: "licensing" | "signing-keys" | "echo"): Promise<void> {
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
          const hello = create(HeartbeatRequestSchema, { kind: { case: "hello", value: { licenseId: license!.id, fingerprint, lastLeaseSeq: 1n, agentVersion: "bench/1" } } });
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

/** An event-loop stall of a server child (see `serve`). */
interface Stall {
  at: number;
  ms: number;
  onCpuMs: number;
  waitingMs: number;
}

/** A server's stalls during a window, and the CPU it used (cores, every thread). */
interface ServerStalls {
  maxMs: number;
  /** When the longest stall began, in seconds into the window, and the garbage collection inside it. */
  longestAtS: number;
  longestGcMs: number;
  /** How many stalls over 50 ms began in each second of the window: spread out, or bunched (a phase's aftermath). */
  over50BySecond: number[];
  over50: number;
  /** The stalls over 50 ms added up, and how much of that time the main thread ran or waited for a CPU. */
  over50Ms: number;
  over50OnCpuMs: number;
  over50WaitingMs: number;
  /** Garbage collection inside those stalls, and how many of the collections were full mark-compacts. */
  over50GcMs: number;
  over50MajorGcs: number;
  cores: number;
  /** The main thread alone (the event loop), in cores. */
  mainThreadCores: number;
}

/** The first and last of samples ([wall-clock time, …]) taken between two times, or null with fewer than two. */
function windowEnds<T extends readonly [number, ...number[]]>(samples: readonly T[], from: number, to: number): [T, T] | null {
  const inside = samples.filter(([at]) => at >= from && at <= to);
  return inside.length < 2 ? null : [inside[0]!, inside[inside.length - 1]!];
}

/** Cores used between two wall-clock times, from [time, cumulative CPU ms] samples a second apart. */
function coresBetween(samples: ReadonlyArray<[number, number]>, from: number, to: number): number {
  const ends = windowEnds(samples, from, to);
  return ends ? (ends[1][1] - ends[0][1]) / (ends[1][0] - ends[0][0]) : NaN;
}

/** The machine's busy cores between two wall-clock times, from /proc/stat samples (see `machineCpu`). */
function machineCoresBetween(samples: ReadonlyArray<[number, number, number]>, from: number, to: number): number {
  const ends = windowEnds(samples, from, to);
  return ends ? ((ends[1][1] - ends[0][1]) / (ends[1][2] - ends[0][2])) * cpus().length : NaN;
}

/** Samples the machine's CPU once a second: [time, busy jiffies, total jiffies] (Linux). */
function machineCpu(): { samples: Array<[number, number, number]>; stop(): void } {
  const samples: Array<[number, number, number]> = [];
  const read = () => {
    try {
      const fields = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
      const total = fields.reduce((n, x) => n + x, 0);
      // idle and iowait are the idle columns (4th and 5th).
      samples.push([Date.now(), total - fields[3]! - fields[4]!, total]);
    } catch {
      // Not Linux: no machine figure.
    }
  };
  read();
  const timer = setInterval(read, 1000);
  return { samples, stop: () => clearInterval(timer) };
}

/**
 * Load child: opens the streams (then reports "opened" and waits for "go", so the parent can read
 * the server's CPU spent opening them), runs the closed-loop phase, then the interval phase, then
 * holds the streams idle until told to close.
 */
async function load(): Promise<void> {
  const req = await new Promise<LoadRequest>((resolve) => process.once("message", (m) => resolve(m as LoadRequest)));
  const beat = frame(toBinary(HeartbeatRequestSchema, create(HeartbeatRequestSchema, { kind: { case: "beat", value: { nonce: 123456789n, boxTime: { seconds: 1_790_000_000n, nanos: 123_000_000 } } } })));
  let latencies: number[] = [];
  let beats = 0;
  let running = false;
  let measuring = false;
  const sessions: http2.ClientHttp2Session[] = [];
  const streams: { stream: http2.ClientHttp2Stream; sentAt: number; waiting: boolean }[] = [];
  let failed = 0;

  const openOne = (i: number) =>
    new Promise<void>((resolve) => {
      const box = req.boxes[i % req.boxes.length]!;
      const session = http2.connect(req.url, { ca: req.caPem, cert: box.certPem, key: box.keyPem });
      session.on("error", () => undefined);
      sessions.push(session);
      const stream = session.request({ ":method": "POST", ":path": HEARTBEAT_PATH, "content-type": "application/grpc", te: "trailers" });
      const entry = { stream, sentAt: 0, waiting: false };
      let pending: Buffer = Buffer.alloc(0);
      let first = true;
      // A hello has no answer (and connect-node sends response headers only with the first
      // message): a stream counts as open once its connection is up and the hello is written.
      session.once("connect", () => {
        stream.write(Buffer.from(box.hello, "base64"), () => {
          if (first) {
            first = false;
            streams.push(entry);
            resolve();
          }
        });
      });
      stream.on("data", (chunk: Buffer) => {
        // Count whole frames: each beat is answered by exactly one frame (its ack, or its echo).
        pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
        while (pending.length >= 5 && pending.length >= 5 + pending.readUInt32BE(1)) {
          pending = pending.subarray(5 + pending.readUInt32BE(1));
          entry.waiting = false;
          if (measuring) {
            latencies.push(performance.now() - entry.sentAt);
            beats++;
          }
          if (running) {
            entry.sentAt = performance.now();
            entry.waiting = true;
            stream.write(beat);
          }
        }
      });
      stream.on("error", () => undefined);
      stream.on("close", () => {
        if (first) {
          first = false;
          resolve();
        }
        failed++;
      });
    });

  // Open in waves so the handshakes do not all time out at once.
  for (let i = 0; i < req.streams; i += 200) await Promise.all(Array.from({ length: Math.min(200, req.streams - i) }, (_, k) => openOne(i + k)));
  process.send?.({ opened: streams.length - failed });
  await new Promise<void>((resolve) => process.once("message", () => resolve()));

  // Closed loop: one beat in flight per stream.
  running = true;
  for (const s of streams) {
    s.sentAt = performance.now();
    s.waiting = true;
    s.stream.write(beat);
  }
  await sleep(1_000);
  measuring = true;
  const started = performance.now();
  await sleep(req.seconds * 1000);
  measuring = false;
  running = false;
  const elapsed = (performance.now() - started) / 1000;
  await sleep(1_000);
  const closed = percentiles(latencies);
  latencies = [];

  // Interval phase: each stream beats once per interval, the streams' beats spread evenly over
  // it (stream i at offset i/N of the interval), as a fleet beating on its own clocks does.
  // The instrument first collects the closed loop's garbage, so that its own full GC does not
  // land in the window and time every ack of that moment late (the server is left as it is).
  (globalThis as { gc?: () => void }).gc?.();
  const n = streams.length;
  let sent = 0;
  const phaseStart = performance.now();
  const warmUpMs = req.intervalMs;
  const loopDelay = monitorEventLoopDelay({ resolution: 5 });
  let intervalFrom = 0;
  const tick = setInterval(() => {
    const elapsedMs = performance.now() - phaseStart;
    if (elapsedMs >= warmUpMs && !measuring) {
      loopDelay.enable();
      intervalFrom = Date.now();
    }
    const due = Math.floor((elapsedMs * n) / req.intervalMs);
    measuring = elapsedMs >= warmUpMs;
    for (; sent < due; sent++) {
      const s = streams[sent % n]!;
      s.sentAt = performance.now();
      s.waiting = true;
      s.stream.write(beat);
    }
  }, 2);
  await sleep(warmUpMs + req.seconds * 1000);
  clearInterval(tick);
  loopDelay.disable();
  const intervalTo = Date.now();
  await sleep(Math.min(2_000, req.intervalMs));
  measuring = false;
  const interval = percentiles(latencies);
  const unanswered = streams.filter((s) => s.waiting).length;

  const result: LoadResult = {
    opened: streams.length - failed,
    failed,
    beatsPerSecond: beats / elapsed,
    p50Ms: closed.p50,
    p99Ms: closed.p99,
    intervalP50Ms: interval.p50,
    intervalP99Ms: interval.p99,
    intervalUnanswered: unanswered,
    intervalLoadDelayP99Ms: loopDelay.percentile(99) / 1e6,
    intervalLoadDelayMaxMs: loopDelay.max / 1e6,
    intervalFrom,
    intervalTo,
  };
  process.send?.(result);
  // Hold the streams idle until the parent has read the server's RSS.
  await new Promise<void>((resolve) => process.once("message", () => resolve()));
  for (const s of sessions) s.destroy();
  process.send?.("closed");
}

/** What the reconnect load child is told. */
interface ReconnectRequest {
  url: string;
  caPem: string;
  boxes: BoxIdentity[];
  streams: number;
  /** "echo": a stream is acked by the echo of its beat (its second frame); "licensing": by a BeatAck. */
  target: "echo" | "licensing";
  /** An attempt that has no ack after this long is abandoned and counts as failed (the SDK's silence watchdog). */
  silentMs: number;
  /** The attempt a dropped stream's backoff starts at (0 as the SDK). */
  firstAttempt: number;
  /** Give up waiting for the last streams this long after the first one dropped. */
  deadlineMs: number;
}

/** What the reconnect load child reports: epoch milliseconds, so the parent can relate them to its kill. */
interface ReconnectResult {
  opened: number;
  /** When each stream that dropped was acked again, epoch ms (streams not back by the deadline are missing). */
  backAt: number[];
  dropped: number;
  /** When each failed attempt (refused, reset, closed or silent before its ack) was started, epoch ms. */
  failedAt: number[];
  /** Failed attempts by what ended them (an error code, a grpc-status, "silent", "closed"). */
  failures: Record<string, number>;
  /** How long the failed attempts lasted, by cause. */
  failureDurations: Record<string, { p50Ms: number; p99Ms: number; maxMs: number }>;
  /** Streams acked again on a connection that resumed TLS with the ticket they kept. */
  resumed: number;
}

/**
 * Reconnect load child: holds STREAMS streams, each on its own TLS connection, each acked once;
 * reports "opened" and waits. When the server is killed, every stream redials on its own after the
 * appliance SDK's jittered backoff (`backoffDelay(attempt++, DEFAULT_BACKOFF)`, attempt reset by an
 * ack, as the SDK's connection loop does), sends its hello and a beat at once (as the SDK does), and
 * is back when that beat's ack arrives. Like the SDK, each stream keeps the last TLS session ticket
 * its connection received and offers it on every redial (the SDK's own `resumingConnection`), and
 * the reconnects that resumed are counted. Reports once every dropped stream is back, or at the deadline.
 * Streams stay idle once acked: the production beat is once a minute, a rounding error in the storm.
 */
async function reconnectLoad(): Promise<void> {
  const { backoffDelay, DEFAULT_BACKOFF, SessionTicketCache, resumingConnection } = await import("@lcp/appliance-sdk");
  const { fromBinary } = await import("@bufbuild/protobuf");
  const { HeartbeatResponseSchema } = await import("@lcp/proto/licensing/v1/appliance_service_pb");
  const req = await new Promise<ReconnectRequest>((resolve) => process.once("message", (m) => resolve(m as ReconnectRequest)));
  const beat = frame(toBinary(HeartbeatRequestSchema, create(HeartbeatRequestSchema, { kind: { case: "beat", value: { nonce: 1n, boxTime: { seconds: 1_790_000_000n, nanos: 0 } } } })));
  const hellos = req.boxes.map((b) => Buffer.concat([Buffer.from(b.hello, "base64"), beat]));
  // One TLS context per box, built once, as a box has its own: building it per dial (parsing the CA,
  // certificate and key) would make this one process's event loop, standing in for 10,000 boxes,
  // the bottleneck of the storm.
  const contexts = req.boxes.map((b) => createSecureContext({ ca: req.caPem, cert: b.certPem, key: b.keyPem }));
  // One ticket cache per stream: each stream plays a box process of its own.
  const tickets = Array.from({ length: req.streams }, () => new SessionTicketCache());
  let resumed = 0;
  const sessions = new Set<http2.ClientHttp2Session>();
  const backAt: number[] = [];
  const failedAt: number[] = [];
  let failures: Record<string, number> = {};
  let failureMs: Record<string, number[]> = {};
  let opened = 0;
  let dropped = 0;
  let firstDropAt = 0;
  let stopping = false;
  let onProgress = () => {};

  const isAck = (index: number, payload: Buffer) => {
    if (req.target === "echo") return index === 1;
    try {
      return fromBinary(HeartbeatResponseSchema, payload).kind.case === "ack";
    } catch {
      return false;
    }
  };

  const dial = (i: number, attempt: number, down: boolean) => {
    if (stopping) return;
    const startedAt = Date.now();
    const box = i % contexts.length;
    let socket: TLSSocket | undefined;
    const connect = resumingConnection({ secureContext: contexts[box]! }, req.boxes[box]!.certPem, tickets[i]!);
    const session = http2.connect(req.url, { createConnection: (authority: URL) => (socket = connect(authority)) });
    sessions.add(session);
    let reason = "closed";
    session.on("error", (err: NodeJS.ErrnoException) => (reason = err.code ?? err.message));
    const stream = session.request({ ":method": "POST", ":path": HEARTBEAT_PATH, "content-type": "application/grpc", te: "trailers" });
    // A session error (refused, reset) says more than the stream cancel it causes.
    stream.on("error", (err: NodeJS.ErrnoException) => {
      if (reason === "closed") reason = err.code ?? err.message;
    });
    const status = (h: http2.IncomingHttpHeaders) => {
      if (h["grpc-status"] !== undefined) reason = `grpc-status ${String(h["grpc-status"])}: ${String(h["grpc-message"] ?? "")}`;
    };
    stream.on("response", status);
    stream.on("trailers", status);
    stream.write(hellos[i % hellos.length]!);
    let acked = false;
    let frames = 0;
    let pending: Buffer = Buffer.alloc(0);
    const silence = setTimeout(() => {
      reason = "silent";
      session.destroy();
    }, req.silentMs);
    stream.on("data", (chunk: Buffer) => {
      if (acked) return;
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      while (!acked && pending.length >= 5 && pending.length >= 5 + pending.readUInt32BE(1)) {
        const payload = pending.subarray(5, 5 + pending.readUInt32BE(1));
        pending = pending.subarray(5 + payload.length);
        if (!isAck(frames++, payload)) continue;
        acked = true;
        clearTimeout(silence);
        if (down && socket?.isSessionReused()) resumed++;
        if (down) backAt.push(Date.now());
        else opened++;
        onProgress();
      }
    });
    let ended = false;
    const onEnd = () => {
      if (ended) return;
      ended = true;
      clearTimeout(silence);
      sessions.delete(session);
      session.destroy();
      if (stopping) return;
      // The SDK's loop: the delay after an attempt is backoffDelay(attempt++), and an ack resets
      // attempt to 0, so a held stream that drops waits backoffDelay(0) and failures keep growing it.
      if (acked) {
        dropped++;
        if (firstDropAt === 0) firstDropAt = Date.now();
      } else {
        failedAt.push(startedAt);
        failures[reason] = (failures[reason] ?? 0) + 1;
        // How long failed attempts lasted, by cause (logged): instant refusals, or timeouts.
        (failureMs[reason] ??= []).push(Date.now() - startedAt);
      }
      const counter = acked ? (req.firstAttempt ?? 0) : attempt;
      setTimeout(() => dial(i, counter + 1, down || acked), backoffDelay(counter, DEFAULT_BACKOFF));
    };
    // Counted on the session's close, which comes after its error event: the failure's name.
    stream.on("close", () => session.destroy());
    session.on("close", onEnd);
  };

  // Open in waves so the handshakes do not all time out at once.
  for (let i = 0; i < req.streams; i += 200) {
    const target = Math.min(req.streams, i + 200);
    const wave = new Promise<void>((resolve) => {
      onProgress = () => {
        if (opened >= target) resolve();
      };
    });
    for (let k = i; k < target; k++) dial(k, 0, false);
    await Promise.race([wave, sleep(req.silentMs)]);
  }
  onProgress = () => {};
  failedAt.length = 0;
  failures = {};
  failureMs = {};
  process.send?.({ opened });
  await new Promise<void>((resolve) => process.once("message", () => resolve()));

  // Wait until the kill has dropped the streams and every one of them is back, or the deadline.
  await new Promise<void>((resolve) => {
    const check = setInterval(() => {
      const allBack = dropped >= opened && backAt.length >= dropped;
      if (allBack || (firstDropAt > 0 && Date.now() - firstDropAt > req.deadlineMs)) {
        clearInterval(check);
        resolve();
      }
    }, 50);
  });
  const failureDurations = Object.fromEntries(
    Object.entries(failureMs).map(([k, v]) => {
      const { p50, p99 } = percentiles(v);
      return [k, { p50Ms: p50, p99Ms: p99, maxMs: Math.max(...v) }];
    }),
  );
  process.send?.({ opened, backAt, dropped, failedAt, failures, failureDurations, resumed } satisfies ReconnectResult);
  await new Promise<void>((resolve) => process.once("message", () => resolve()));
  stopping = true;
  for (const s of sessions) s.destroy();
  process.send?.("closed");
}

/** A server's stalls in the interval phase, for the table: how long, how many, and where the time went. */
function describeStalls(st: ServerStalls, machineCores: number): string {
  const pct = (ms: number) => `${Math.round((100 * ms) / Math.max(1, st.over50Ms))} %`;
  const where =
    st.over50 > 0
      ? `; in them the main thread ran ${pct(st.over50OnCpuMs)} and waited for a CPU ${pct(st.over50WaitingMs)} of the time, garbage collection ${pct(st.over50GcMs)} (${st.over50MajorGcs} mark-compact)`
      : "";
  const longest = st.maxMs >= 50 ? ` (${st.longestAtS.toFixed(1)} s into the window, GC ${st.longestGcMs.toFixed(0)} ms)` : "";
  const bySecond = st.over50 > 0 ? `, by second of the window [${st.over50BySecond.join(" ")}]` : "";
  return `server's longest stall ${st.maxMs.toFixed(0)} ms${longest}, ${st.over50} over 50 ms${bySecond}${where}; server ${st.cores.toFixed(2)} cores (main thread ${st.mainThreadCores.toFixed(2)}), machine ${machineCores.toFixed(2)} cores busy`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function percentiles(values: number[]): { p50: number; p99: number } {
  values.sort((a, b) => a - b);
  const pct = (p: number) => values[Math.min(values.length - 1, Math.floor(values.length * p))] ?? NaN;
  return { p50: pct(0.5), p99: pct(0.99) };
}

// ---------------------------------------------------------------- the benchmark

/** Runs the heartbeat benchmark and returns its figures. */
export async function benchHeartbeat(): Promise<BenchResult[]> {
  const { createTestPki } = await import("@lcp/testing/pki");
  const pki = await createTestPki();
  const own = await pki.service("licensing");
  const skCert = await pki.service("signing-keys");
  const dataDir = mkdtempSync(join(tmpdir(), "lcp-bench-heartbeat-"));
  const pkiMsg = { caPem: pki.ca.certPem, certPem: own.certPem, keyPem: own.keyPem, trustDomain: pki.trustDomain, sk: skCert };
  const results: BenchResult[] = [];
  // Signing-keys has a process of its own: the reconnect phase kills licensing alone.
  const signingKeys = forkSelf("--serve-signing-keys");
  let licensing = forkSelf("--serve-licensing");
  let echo = forkSelf("--serve-echo");
  try {
    const maxStreams = Math.max(0, ...STREAMS, RECONNECT_STREAMS);
    const sk = await ask<{ url: string }>(signingKeys, { dataDir, boxes: 0, pki: pkiMsg, port: 0 } satisfies ServeRequest);
    console.error(`heartbeat bench: activating ${Math.min(BOXES, maxStreams)} boxes…`);
    const licensingReq: ServeRequest = { dataDir, boxes: Math.min(BOXES, maxStreams), pki: pkiMsg, port: 0, signingKeysUrl: sk.url };
    const echoReq: ServeRequest = { dataDir, boxes: 0, pki: pkiMsg, port: 0, echoTicketKeys: randomBytes(48).toString("base64") };
    const lic = await ask<{ url: string; boxes: BoxIdentity[] }>(licensing, licensingReq);
    const raw = await ask<{ url: string }>(echo, echoReq);
    const memory = (child: ChildProcess) => ask<{ rss: number; heapUsed: number; heapTotal: number; external: number }>(child, "rss");

    const cpu = (child: ChildProcess) => ask<{ cpuMicros: number }>(child, "cpu").then((r) => r.cpuMicros);

    const run = async (server: ChildProcess, url: string, boxes: BoxIdentity[], streams: number) => {
      const before = await memory(server);
      const cpuBefore = await cpu(server);
      const loader = forkSelf("--load");
      try {
        const { opened } = await ask<{ opened: number }>(loader, { url, caPem: pki.ca.certPem, boxes, streams, seconds: SECONDS, intervalMs: INTERVAL_MS } satisfies LoadRequest);
        const cpuPerOpenMs = ((await cpu(server)) - cpuBefore) / 1000 / Math.max(1, opened);
        const machine = machineCpu();
        const result = await ask<LoadResult>(loader, "go").finally(() => machine.stop());
        const serverStalls = await ask<ServerStalls>(server, { stallsBetween: [result.intervalFrom, result.intervalTo] });
        const machineCores = machineCoresBetween(machine.samples, result.intervalFrom, result.intervalTo);
        const held = await memory(server);
        await ask(loader, "close");
        const perStream = (bytes: number) => bytes / 1024 / Math.max(1, result.opened);
        return {
          ...result,
          serverStalls,
          machineCores,
          cpuPerOpenMs,
          kbPerStream: perStream(held.rss - before.rss),
          // Where it went (logged, not tabled): the JS heap and node's external memory.
          heapKbPerStream: perStream(held.heapUsed - before.heapUsed),
          heapCommittedKbPerStream: perStream(held.heapTotal - before.heapTotal),
          externalKbPerStream: perStream(held.external - before.external),
        };
      } finally {
        await stop(loader);
      }
    };
    // The echo needs certificates that chain to the CA too: reuse the boxes' (the echo trusts the same CA).
    for (const n of STREAMS) {
      console.error(`heartbeat bench: ${n} streams…`);
      const r = await run(echo, raw.url, lic.boxes, n);
      const l = await run(licensing, lic.url, lic.boxes, n);
      console.error(JSON.stringify({ n, raw: r, licensing: l }));
      const note = l.opened < n || r.opened < n ? ` (opened ${l.opened}/${r.opened} of ${n})` : "";
      results.push(
        { name: `Heartbeat beats/s, ${n} mTLS streams closed-loop${note}`, value: l.beatsPerSecond, unit: "beats/s", baseline: "raw node:http2 echo, same streams", baselineValue: r.beatsPerSecond, ratio: l.beatsPerSecond / r.beatsPerSecond, goal: "≥ 0.5" },
        { name: `Heartbeat p50 ack latency, ${n} streams (ratio = baseline/value)`, value: l.p50Ms, unit: "ms", baseline: "raw echo p50", baselineValue: r.p50Ms, ratio: r.p50Ms / l.p50Ms },
        { name: `Heartbeat p99 ack latency, ${n} streams (ratio = baseline/value)`, value: l.p99Ms, unit: "ms", baseline: "raw echo p99", baselineValue: r.p99Ms, ratio: r.p99Ms / l.p99Ms },
        { name: `Heartbeat p99 ack latency, ${n} streams beating every ${INTERVAL_MS} ms (ratio = baseline/value)${l.intervalUnanswered > 0 ? ` (${l.intervalUnanswered} unanswered)` : ""}`, detail: `the load generator's own event-loop delay p99 / max: ${l.intervalLoadDelayP99Ms.toFixed(1)} / ${l.intervalLoadDelayMaxMs.toFixed(0)} ms (echo run ${r.intervalLoadDelayP99Ms.toFixed(1)} / ${r.intervalLoadDelayMaxMs.toFixed(0)} ms); ${describeStalls(l.serverStalls, l.machineCores)} (echo: ${describeStalls(r.serverStalls, r.machineCores)})`, value: l.intervalP99Ms, unit: "ms", baseline: "raw echo p99, same beats", baselineValue: r.intervalP99Ms, ratio: r.intervalP99Ms / l.intervalP99Ms, goal: "value < 50 ms" },
        { name: `Heartbeat p50 ack latency, ${n} streams beating every ${INTERVAL_MS} ms (ratio = baseline/value)`, value: l.intervalP50Ms, unit: "ms", baseline: "raw echo p50, same beats", baselineValue: r.intervalP50Ms, ratio: r.intervalP50Ms / l.intervalP50Ms },
        { name: `Server RSS per held stream, ${n} streams (ratio = value/baseline)`, value: l.kbPerStream, unit: "KB", baseline: "raw echo RSS per held stream", baselineValue: r.kbPerStream, ratio: l.kbPerStream / r.kbPerStream, goal: "≤ 1.2" },
        { name: `Server CPU per stream opened (TLS handshake; licensing: + hello), ${n} streams (ratio = value/baseline)`, value: l.cpuPerOpenMs, unit: "ms", baseline: "raw echo CPU per stream opened", baselineValue: r.cpuPerOpenMs, ratio: l.cpuPerOpenMs / r.cpuPerOpenMs },
      );
    }

    // kill -9 and restart (same port, same data dir), the echo first as the floor of the same load.
    if (RECONNECT_STREAMS > 0) {
      const n = RECONNECT_STREAMS;
      const reconnect = async (target: "echo" | "licensing", url: string, serveReq: ServeRequest) => {
        const loader = forkSelf("--reconnect-load");
        try {
          console.error(`heartbeat bench: ${target}, ${n} streams held, kill -9 and restart…`);
          const { opened } = await ask<{ opened: number }>(loader, {
            url, caPem: pki.ca.certPem, boxes: lic.boxes, streams: n, target, firstAttempt: RECONNECT_FIRST_ATTEMPT, silentMs: RECONNECT_SILENT_MS, deadlineMs: RECONNECT_DEADLINE_S * 1000,
          } satisfies ReconnectRequest);
          const result = ask<ReconnectResult>(loader, "go");
          const old = target === "echo" ? echo : licensing;
          const exited = new Promise((resolve) => old.once("exit", resolve));
          const killedAt = Date.now();
          old.kill("SIGKILL");
          await exited;
          // Restarted at once on the port the boxes know, as a supervisor would.
          const restarted = forkSelf(target === "echo" ? "--serve-echo" : "--serve-licensing");
          if (target === "echo") echo = restarted;
          else licensing = restarted;
          await ask(restarted, { ...serveReq, boxes: 0, port: Number(new URL(url).port) } satisfies ServeRequest);
          const servingAt = Date.now();
          const cpuAtServing = await cpu(restarted);
          const r = await result;
          const stormCpuS = ((await cpu(restarted)) - cpuAtServing) / 1e6;
          await ask(loader, "close");
          const back = r.backAt.sort((a, b) => a - b);
          const at = (p: number) => {
            const k = Math.max(1, Math.ceil(r.dropped * p));
            return k <= back.length ? (back[k - 1]! - killedAt) / 1000 : NaN;
          };
          const summary = {
            target, opened, dropped: r.dropped, back: back.length,
            servingS: (servingAt - killedAt) / 1000, p50S: at(0.5), p99S: at(0.99), allS: at(1),
            failed: r.failedAt.length, failedAfterServing: r.failedAt.filter((t) => t > servingAt).length, failures: r.failures, failureDurations: r.failureDurations, stormCpuS,
            resumed: r.resumed, cpuPerStreamMs: (stormCpuS * 1000) / Math.max(1, back.length),
          };
          console.error(JSON.stringify(summary));
          return summary;
        } finally {
          await stop(loader);
        }
      };
      const r = await reconnect("echo", raw.url, echoReq);
      const l = await reconnect("licensing", lic.url, licensingReq);
      const note = l.back < n || r.back < n ? ` (back by the ${RECONNECT_DEADLINE_S} s deadline: ${l.back}/${r.back} of ${n})` : "";
      const experiment = RECONNECT_FIRST_ATTEMPT > 0 ? ` (experiment: backoff starts at attempt ${RECONNECT_FIRST_ATTEMPT}, not the SDK's 0)` : "";
      const name = (what: string) => `Reconnect after kill -9 and restart, ${n} streams${experiment}: ${what}`;
      results.push(
        { name: name("kill → restarted server serving (ratio = baseline/value)"), value: l.servingS, unit: "s", baseline: "raw echo killed and restarted the same way", baselineValue: r.servingS, ratio: r.servingS / l.servingS },
        { name: name("kill → 50 % of streams acked again (ratio = baseline/value)"), value: l.p50S, unit: "s", baseline: "raw echo, same load", baselineValue: r.p50S, ratio: r.p50S / l.p50S },
        { name: name("kill → 99 % of streams acked again (ratio = baseline/value)"), value: l.p99S, unit: "s", baseline: "raw echo, same load", baselineValue: r.p99S, ratio: r.p99S / l.p99S },
        { name: name(`kill → all streams acked again (ratio = baseline/value)${note}`), value: l.allS, unit: "s", baseline: "raw echo, same load", baselineValue: r.allS, ratio: r.allS / l.allS, goal: "value ≤ 60 s" },
        { name: name(`failed attempts (refused while down, or no ack; started after serving: ${l.failedAfterServing} / echo ${r.failedAfterServing})`), value: l.failed, unit: "attempts", baseline: "raw echo, same load", baselineValue: r.failed, ratio: l.failed / Math.max(1, r.failed) },
        { name: name("server CPU from serving until all acked (ratio = value/baseline)"), value: l.stormCpuS, unit: "s", baseline: "raw echo, same load", baselineValue: r.stormCpuS, ratio: l.stormCpuS / r.stormCpuS },
        { name: name("server CPU per stream taken back (ratio = value/baseline)"), value: l.cpuPerStreamMs, unit: "ms", baseline: "raw echo, same load", baselineValue: r.cpuPerStreamMs, ratio: l.cpuPerStreamMs / r.cpuPerStreamMs },
        { name: name("streams back on a resumed TLS session (ratio = value/baseline)"), value: l.resumed, unit: "streams", baseline: "raw echo, same load", baselineValue: r.resumed, ratio: l.resumed / Math.max(1, r.resumed) },
      );
    }
  } finally {
    await stop(licensing);
    await stop(echo);
    await stop(signingKeys);
    rmSync(dataDir, { recursive: true, force: true });
  }
  return results;
}

const entry = process.argv[1] ? fileURLToPath(import.meta.url) === process.argv[1] : false;
if (process.argv[2] === "--serve-licensing") await serve("licensing");
else if (process.argv[2] === "--serve-signing-keys") await serve("signing-keys");
else if (process.argv[2] === "--serve-echo") await serve("echo");
else if (process.argv[2] === "--load") await load();
else if (process.argv[2] === "--reconnect-load") await reconnectLoad();
else if (entry) printResults(await benchHeartbeat());
