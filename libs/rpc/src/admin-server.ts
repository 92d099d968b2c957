/**
 * The plain-text admin listener (`ADMIN_PORT`): what kubelet's probes and a Prometheus scraper
 * need, without TLS or a client certificate. One port speaks two protocols, told apart by the
 * first bytes of each connection:
 *
 * - HTTP/1.1: three read-only paths, `/healthz`, `/readyz` and `/metrics` (httpGet probes, scrapes);
 * - HTTP/2 with prior knowledge (h2c, what kubelet's `grpc` probe sends): `grpc.health.v1.Health/Check`
 *   and nothing else — no Watch or List, which would let an unauthenticated peer hold streams.
 *
 * The RPC services stay on the TLS listener only.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createH2cServer } from "node:http2";
import { createServer as createTcpServer, type AddressInfo, type Socket } from "node:net";
import { Duplex } from "node:stream";
import { Health, HealthCheckResponseSchema, HealthCheckResponse_ServingStatus as ServingStatus } from "@lcp/proto/grpc/health/v1/health_pb";
import type { Logger } from "pino";
import { METRICS_PATH, sendMetrics, type RpcMetrics } from "./metrics.js";

/** Liveness: 200 while the process runs and its event loop turns. */
export const HEALTHZ_PATH = "/healthz";
/** Readiness: 200 while the service reports SERVING, 503 with a one-line reason otherwise. */
export const READYZ_PATH = "/readyz";
/** The Prometheus text exposition of the app's registry. */
export const ADMIN_METRICS_PATH = METRICS_PATH;

/** What `/readyz` answers from: ready, or not and why (one short line). */
export type Readiness = { readonly ready: true } | { readonly ready: false; readonly reason: string };

/** Options of {@link createAdminServer}. */
export interface AdminServerOptions {
  /** `HOST`. */
  readonly host: string;
  /** `ADMIN_PORT`; 0 picks a free port (tests). */
  readonly port: number;
  /** The registry served at `/metrics` (the same one as the TLS listener's). */
  readonly metrics: RpcMetrics;
  /** Asked on every `/readyz`, and on every gRPC health Check of the overall status (`""`). */
  readonly readiness: () => Readiness;
  /**
   * A named service's status for a gRPC health Check (the TLS listener's health service);
   * undefined → NOT_FOUND, as there. Without it only `""` is known. A named service is reported
   * SERVING only while the app is ready as a whole, too.
   */
  readonly serviceStatus?: (service: string) => ServingStatus | undefined;
  readonly logger: Logger;
}

/** A running admin listener. */
export interface AdminServer {
  readonly port: number;
  /** Stops accepting and drops open connections (every answer is small and immediate). Idempotent. */
  close(): Promise<void>;
}

/** Probes and scrapes send a request line and a few headers; anything bigger is not one of them. */
const MAX_HEADER_BYTES = 4 * 1024;
const HEADERS_TIMEOUT_MS = 5_000;
const REQUEST_TIMEOUT_MS = 10_000;
const KEEP_ALIVE_TIMEOUT_MS = 5_000;
/** Kubelet and Prometheus keep a connection or two each; more is someone else. */
const MAX_CONNECTIONS = 64;
/** A probe asks one thing at a time. */
const H2C_MAX_STREAMS = 4;
/** An h2c connection with no stream for this long is closed (kubelet opens one per probe). */
const H2C_IDLE_TIMEOUT_MS = 10_000;
/** The longest service name a Check may ask about (names are proto full names). */
const MAX_SERVICE_NAME = 200;
/** Every HTTP/2 connection starts with this preface; no HTTP/1.1 request line does ("PRI" is no method). */
const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/**
 * Starts the admin listener: `GET`/`HEAD` on `/healthz`, `/readyz` and `/metrics`; 405 for other
 * methods on them, 404 for every other path, 413 for a request that carries a body.
 */
export async function createAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  const log = options.logger;
  const http1 = createHttpServer(
    {
      maxHeaderSize: MAX_HEADER_BYTES,
      headersTimeout: HEADERS_TIMEOUT_MS,
      requestTimeout: REQUEST_TIMEOUT_MS,
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
      // Node checks the two timeouts above on this period (default 30 s, which would stretch them).
      connectionsCheckingInterval: 1_000,
    },
    (req, res) => handle(req, res),
  );
  // Node starts the header and request timeouts' checker when an HTTP server emits "listening";
  // this one is handed its connections instead of listening itself, so it is told.
  http1.emit("listening");
  http1.on("clientError", (err: NodeJS.ErrnoException, socket) => {
    // Node's default answer, minus the error text; a timed-out or reset socket is just dropped.
    const status =
      err.code === "HPE_HEADER_OVERFLOW" ? "431 Request Header Fields Too Large" : err.code === "ERR_HTTP_REQUEST_TIMEOUT" ? "408 Request Timeout" : "400 Bad Request";
    if (socket.writable && err.code !== "ECONNRESET") socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\n\r\n`);
    else socket.destroy();
  });

  const h2c = createH2cServer(
    { maxHeaderListPairs: 32, maxSessionMemory: 1, peerMaxConcurrentStreams: H2C_MAX_STREAMS, settings: { maxConcurrentStreams: H2C_MAX_STREAMS, maxHeaderListSize: MAX_HEADER_BYTES } },
    connectNodeAdapter({
      grpc: true,
      connect: false,
      grpcWeb: false,
      readMaxBytes: 1024,
      routes: (router) => router.rpc(Health.method.check, (req) => create(HealthCheckResponseSchema, { status: checkStatus(req.service) })),
    }),
  );
  h2c.on("session", (session) => session.setTimeout(H2C_IDLE_TIMEOUT_MS, () => session.close()));
  h2c.on("sessionError", () => undefined);

  function checkStatus(service: string): ServingStatus {
    if (service.length > MAX_SERVICE_NAME) throw new ConnectError("service name too long", Code.InvalidArgument);
    const ready = options.readiness().ready;
    if (service === "") return ready ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
    const status = options.serviceStatus?.(service);
    if (status === undefined) throw new ConnectError(`unknown service ${service.replace(/[^\w.]/g, "?")}`, Code.NotFound);
    return ready ? status : ServingStatus.NOT_SERVING;
  }

  // Each connection goes to one of the two servers by its first bytes. A peer that sends nothing
  // is dropped after the header timeout; one that stops mid-request is the chosen server's to time out.
  const sockets = new Set<Socket>();
  const server = createTcpServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    socket.setTimeout(HEADERS_TIMEOUT_MS, () => socket.destroy());
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const n = Math.min(head.length, H2_PREFACE.length);
      const h2 = head.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
      if (h2 && n < H2_PREFACE.length) return; // a preface split across packets: wait for the rest
      socket.off("data", onData);
      socket.setTimeout(0);
      if (h2) {
        h2c.emit("connection", replaying(socket, head));
        return;
      }
      socket.pause();
      socket.unshift(head);
      http1.emit("connection", socket);
      socket.resume();
    };
    socket.on("data", onData);
  });
  server.maxConnections = MAX_CONNECTIONS;

  function text(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
    res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store", ...headers });
    res.end(res.req.method === "HEAD" ? undefined : `${body}\n`);
  }

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q === -1 ? url : url.slice(0, q);
    if (path !== HEALTHZ_PATH && path !== READYZ_PATH && path !== ADMIN_METRICS_PATH) {
      text(res, 404, "not found", { connection: "close" });
      req.resume();
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      text(res, 405, "method not allowed", { allow: "GET, HEAD", connection: "close" });
      req.resume();
      return;
    }
    const length = req.headers["content-length"];
    if (req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0")) {
      // Nothing here reads a body: refuse it rather than read or buffer it.
      text(res, 413, "no request body accepted", { connection: "close" });
      req.destroy();
      return;
    }
    if (path === HEALTHZ_PATH) {
      text(res, 200, "ok");
      return;
    }
    if (path === READYZ_PATH) {
      const state = options.readiness();
      if (state.ready) text(res, 200, "ready");
      else text(res, 503, `not ready: ${state.reason.replace(/[\r\n]+/g, " ").slice(0, 200)}`);
      return;
    }
    sendMetrics(options.metrics, res, req.method === "HEAD", log);
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ port: options.port, host: options.host }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (err) => log.error({ err }, "admin server error"));
  const port = (server.address() as AddressInfo).port;
  log.info({ port, host: options.host }, "admin listener (plain text: /healthz, /readyz, /metrics; gRPC health Check over h2c)");

  let closing: Promise<void> | undefined;
  return {
    port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
        http1.close();
        h2c.close();
      });
      return closing;
    },
  };
}

/**
 * The socket as a plain stream that first replays the bytes already read from it. HTTP/2 reads a
 * real socket's handle directly, so bytes put back with `unshift` would never reach it; a
 * JavaScript stream it reads through its own wrapper, replayed bytes first. Probes are small and
 * few, so the extra copy costs nothing.
 */
function replaying(socket: Socket, head: Buffer): Duplex {
  const stream = new Duplex({
    read: () => void socket.resume(),
    write: (chunk: Buffer, _encoding, done) => void socket.write(chunk, done),
    final: (done) => void socket.end(done),
    destroy: (err, done) => {
      socket.destroy();
      done(err);
    },
  });
  stream.push(head);
  socket.on("data", (chunk: Buffer) => {
    if (!stream.push(chunk)) socket.pause();
  });
  socket.once("end", () => stream.push(null));
  socket.once("close", () => stream.destroy());
  return stream;
}
