/**
 * The heartbeat bench's load children (heartbeat.ts `--load`, `--reconnect-load`): streams held on
 * a plain http2 client each, framed with the same gRPC framing the server uses (@lcp/rpc/grpc-frame).
 */
import { createSecureContext, type TLSSocket } from "node:tls";
import * as http2 from "node:http2";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { create, toBinary } from "@bufbuild/protobuf";
import { HeartbeatRequestSchema } from "@lcp/proto/licensing/v1/appliance_service_pb";
import { frame, GrpcFrameReader } from "@lcp/rpc/grpc-frame";
import type { BoxIdentity } from "./heartbeat-serve.js";
import { percentiles, sleep } from "./heartbeat-stats.js";

const HEARTBEAT_PATH = "/licensing.v1.ApplianceService/Heartbeat";

/** Hands each whole message of a response stream to `onMessage`; a true return stops reading. */
class Frames extends GrpcFrameReader {
  constructor(private readonly onMessage: (message: Uint8Array) => boolean) {
    super();
  }
  protected acceptFrame(): boolean {
    return true;
  }
  protected onFrame(message: Uint8Array): void {
    if (this.onMessage(message)) this.stopped = true;
  }
}


export interface LoadRequest {
  url: string;
  caPem: string;
  boxes: BoxIdentity[];
  streams: number;
  seconds: number;
  intervalMs: number;
}

export interface LoadResult {
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


/**
 * Load child: opens the streams (then reports "opened" and waits for "go", so the parent can read
 * the server's CPU spent opening them), runs the closed-loop phase, then the interval phase, then
 * holds the streams idle until told to close.
 */
export async function load(): Promise<void> {
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
      // Count whole frames: each beat is answered by exactly one frame (its ack, or its echo).
      const frames = new Frames(() => {
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
        return false;
      });
      stream.on("data", (chunk: Buffer) => frames.read(chunk));
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
export interface ReconnectRequest {
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
export interface ReconnectResult {
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
export async function reconnectLoad(): Promise<void> {
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

  const isAck = (index: number, payload: Uint8Array) => {
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
    const silence = setTimeout(() => {
      reason = "silent";
      session.destroy();
    }, req.silentMs);
    const reader = new Frames((payload) => {
      if (!isAck(frames++, payload)) return false;
      acked = true;
      clearTimeout(silence);
      if (down && socket?.isSessionReused()) resumed++;
      if (down) backAt.push(Date.now());
      else opened++;
      onProgress();
      return true;
    });
    stream.on("data", (chunk: Buffer) => reader.read(chunk));
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
