/**
 * The plain-HTTP admin listener (`ADMIN_PORT`): what kubelet's httpGet probes and a Prometheus
 * scraper need, without TLS or a client certificate. It serves three read-only paths and nothing
 * else; the RPC services stay on the TLS listener only.
 */
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
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
  /** Asked on every `/readyz`. */
  readonly readiness: () => Readiness;
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

/**
 * Starts the admin listener: `GET`/`HEAD` on `/healthz`, `/readyz` and `/metrics`; 405 for other
 * methods on them, 404 for every other path, 413 for a request that carries a body.
 */
export async function createAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  const log = options.logger;
  const server = createHttpServer(
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
  server.maxConnections = MAX_CONNECTIONS;
  const sockets = new Set<Socket>();
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  server.on("clientError", (err: NodeJS.ErrnoException, socket) => {
    // Node's default answer, minus the error text; a timed-out or reset socket is just dropped.
    const status =
      err.code === "HPE_HEADER_OVERFLOW" ? "431 Request Header Fields Too Large" : err.code === "ERR_HTTP_REQUEST_TIMEOUT" ? "408 Request Timeout" : "400 Bad Request";
    if (socket.writable && err.code !== "ECONNRESET") socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\n\r\n`);
    else socket.destroy();
  });

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
  log.info({ port, host: options.host }, "admin listener (plain HTTP: /healthz, /readyz, /metrics)");

  let closing: Promise<void> | undefined;
  return {
    port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      return closing;
    },
  };
}
