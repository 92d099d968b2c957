/**
 * `startConsole(config)`: the web console's own server (docs/design.md §13), a backend-for-frontend
 * on one HTTPS origin. It signs admins in with the organisation's OIDC issuer, keeps their tokens
 * server-side behind an HttpOnly session cookie, serves the single-page app, and forwards the
 * app's Connect calls to the services with the admin's bearer token. Used by main.ts and tests.
 *
 * Routes:
 * - `GET /` → 302 `/licensing`; `GET /licensing[/…]` → the app's index.html with a live session,
 *   else 302 `/auth/login?return=<path and query>`; `GET /assets/…` → the built files.
 * - `GET /auth/login`, `GET /auth/callback`, `GET /auth/session`, `POST /auth/logout`,
 *   `GET /auth/signed-out` (auth-routes.ts).
 * - `POST /api/<pkg.Service>/<Method>` (api-proxy.ts).
 * - `GET /healthz` (liveness) and `GET /readyz` (readiness: 503 while the database does not
 *   answer), also on the plain-HTTP `ADMIN_PORT` listener with `/metrics`.
 *
 * Sessions and pending sign-ins live in the console's database (SQLite under `DATA_DIR`, or the
 * `console` schema of `DATABASE_URL`), so replicas behind a load balancer need no sticky sessions.
 */
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { createOrm, isConnectionError, type Database } from "@lcp/persistence";
import { createAdminServer, createLogger, createMetrics, DEFAULT_READINESS_INTERVAL_MS, OPENAPI_PATH, sendOpenApi, type Readiness } from "@lcp/rpc";
import { acquireTracing, createCleanupStack, createReadinessMonitor, databaseProbe, READY_GAUGE, type ReadinessMonitor } from "@lcp/service";
import { forwardApiCall, DEFAULT_UPSTREAM_TIMEOUT_MS, type ApiContext } from "./api-proxy.js";
import { apiRoutes } from "./api-routes.js";
import { forwardHttpPath, httpPathOwner } from "./http-paths.js";
import { callback, login, logout, sessionInfo, signedOut, type AuthContext } from "./auth-routes.js";
import { loadOrCreateDevSessionKey, type ConsoleConfig } from "./config.js";
import { safeReturnPath, sessionOf } from "./guards.js";
import { redirect, securityHeaders, sendConnectError, sendText } from "./http.js";
import { createOidcRelyingParty } from "./oidc.js";
import { createPendingLogins } from "./pending-logins.js";
import { createSealer } from "./sealing.js";
import { createDatabaseSessionStore } from "./session-store.js";
import { createSessions, errorFields } from "./sessions.js";
import { entities, migrations } from "./storage/schema.js";
import { createUpstreamPool, type UpstreamPool } from "./upstream.js";
import { createWebRoot, NOT_BUILT_MESSAGE } from "./web-root.js";

/** A running console server. */
export interface ConsoleApp {
  /** `https://localhost:<port>` (what the listener answers on; browsers use `publicUrl`). */
  readonly url: string;
  readonly port: number;
  /** `PUBLIC_URL`, or `https://localhost:<port>` when unset. */
  readonly publicUrl: string;
  /** The admin listener's port, when `adminPort` was set. */
  readonly adminPort?: number | undefined;
  /** Stops accepting, ends open connections after their answers, closes the pools. Idempotent. */
  close(): Promise<void>;
}

/** Default whole-request deadline; a slowly dripped body or header ends with 408. */
const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
const HEADERS_TIMEOUT_MS = 10_000;
const MAX_HEADER_BYTES = 16 * 1024;
const SHUTDOWN_GRACE_MS = 5_000;

/** Starts the console server on `config.port` (0: a free one). */
export async function startConsole(config: ConsoleConfig): Promise<ConsoleApp> {
  const log = config.logger ?? createLogger("console", config.logLevel);
  const now = config.now ?? Date.now;
  const cleanup = createCleanupStack(log);
  // Deferred first, so it runs last: the spans of the last forwarded calls are flushed.
  if (config.tracing) cleanup.defer(await acquireTracing("console", config.tracing, log));
  const requestTimeoutMs = config.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const headers = securityHeaders(new URL(config.oidc.issuer).origin);
  const webRoot = createWebRoot(config.webRoot);

  const metrics = createMetrics({ app: "console", logger: log });
  const readyGauge = metrics.gauge(READY_GAUGE, "1 while this replica is ready (started, its database answers), else 0.");
  readyGauge.set(0);
  let monitor: ReadinessMonitor | undefined;
  let started = false;
  const readiness = (): Readiness => {
    if (cleanup.signal.aborted) return { ready: false, reason: "shutting down" };
    if (!monitor || !started) return { ready: false, reason: "starting" };
    return monitor.ready ? { ready: true } : { ready: false, reason: monitor.reason ?? "not ready" };
  };

  // Everything that depends on the public origin is made once the port is known (PORT=0).
  let handle: ((req: IncomingMessage, res: ServerResponse) => Promise<void>) | undefined;

  const server = createServer(
    {
      cert: config.tls.certPem,
      key: config.tls.keyPem,
      minVersion: "TLSv1.2",
      maxHeaderSize: MAX_HEADER_BYTES,
      requestTimeout: requestTimeoutMs,
      headersTimeout: Math.min(HEADERS_TIMEOUT_MS, requestTimeoutMs),
      // Node checks the two timeouts above at this interval.
      connectionsCheckingInterval: Math.min(1_000, requestTimeoutMs),
      keepAliveTimeout: 5_000,
      handshakeTimeout: 10_000,
    },
    (req, res) => {
      const started = performance.now();
      for (const [name, value] of Object.entries(headers)) res.setHeader(name, value as string);
      res.once("close", () => {
        log.info({ method: req.method, path: pathOf(req.url).slice(0, 200), status: res.statusCode, ms: Math.round(performance.now() - started) }, "request");
      });
      if (!handle) {
        sendText(res, 503, "starting");
        return;
      }
      handle(req, res).catch((err: unknown) => {
        const path = pathOf(req.url).slice(0, 200);
        if (res.headersSent) {
          log.error({ err: errorFields(err), path }, "request failed");
          res.destroy();
        } else if (isConnectionError(err)) {
          // Sessions live in the database: without it nobody is signed in or out, so say "later".
          log.warn({ err: errorFields(err), path }, "request refused: the database is unreachable");
          res.setHeader("retry-after", "5");
          if (path.startsWith("/api/")) sendConnectError(res, 503, "unavailable", "the console's database is unreachable: try again shortly");
          else sendText(res, 503, "The console's database is unreachable. Try again shortly.");
        } else {
          log.error({ err: errorFields(err), path }, "request failed");
          sendText(res, 500, "internal error");
        }
      });
    },
  );
  server.maxHeadersCount = 100;
  // A connection quiet for this long (no request, no answer) is closed.
  server.setTimeout(120_000);
  // Malformed requests, oversized headers and timed-out requests: answered briefly, with our headers.
  server.on("clientError", (err: NodeJS.ErrnoException, socket: Socket) => {
    if (!socket.writable || err.code === "ECONNRESET") {
      socket.destroy();
      return;
    }
    const status = err.code === "HPE_HEADER_OVERFLOW" ? 431 : err.code === "ERR_HTTP_REQUEST_TIMEOUT" ? 408 : 400;
    const lines = Object.entries(headers).map(([name, value]) => `${name}: ${String(value)}\r\n`).join("");
    socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nconnection: close\r\ncontent-length: 0\r\n${lines}\r\n`);
  });
  // Open connections, so shutdown can cut the ones still busy after the grace period.
  const sockets = new Set<Socket>();
  server.on("secureConnection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });

  // Shutdown runs newest first: the session sweep and the readiness probe, then the server (its
  // calls drain through the pool), the connections to the services, the database, and last the
  // admin listener (kubelet's liveness probe answers while the rest drains). Calls to the issuer
  // hold no connection open.
  let adminPort: number | undefined;
  if (config.adminPort !== undefined) {
    const admin = await createAdminServer({ host: config.host, port: config.adminPort, metrics, readiness, logger: log });
    adminPort = admin.port;
    cleanup.defer(() => admin.close());
  }
  let db: Database;
  let sessionKey: Uint8Array;
  try {
    db = await createOrm({ app: "console", databaseUrl: config.databaseUrl, dataDir: config.dataDir, schema: config.databaseSchema, entities, migrations, logger: log });
    cleanup.defer(() => db.close());
    sessionKey = config.sessionKey.kind === "configured" ? config.sessionKey.key : await loadOrCreateDevSessionKey(config.sessionKey.dataDir);
  } catch (err) {
    await cleanup.close();
    throw err;
  }
  // `/readyz` says "starting" until the routes are in place, then follows this probe.
  const probe = createReadinessMonitor({
    probe: databaseProbe(db),
    dependency: "database",
    intervalMs: config.readinessIntervalMs ?? DEFAULT_READINESS_INTERVAL_MS,
    log,
    gauge: readyGauge,
    onChange: () => undefined,
  });
  monitor = probe;
  cleanup.defer(() => {
    probe.stop();
    readyGauge.set(0);
  });
  let pool: UpstreamPool | undefined;
  cleanup.defer(() => pool?.close());
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(config.port, config.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (err) {
    // A port in use: the database and the admin listener opened above are closed again.
    await cleanup.close();
    throw err;
  }
  cleanup.defer(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        // Calls still running get a grace period, then their connections are cut.
        const force = setTimeout(() => {
          for (const socket of sockets) socket.destroy();
        }, SHUTDOWN_GRACE_MS);
        force.unref();
      }),
  );

  try {
    const port = (server.address() as AddressInfo).port;
    const publicOrigin = config.publicUrl ?? `https://localhost:${port}`;
    const rp = createOidcRelyingParty({ config: config.oidc, redirectUri: `${publicOrigin}/auth/callback`, now });
    const upstreamPool = createUpstreamPool({ caPem: config.tls.caPem });
    pool = upstreamPool;
    const store = createDatabaseSessionStore({ db, sealer: createSealer(sessionKey, "session"), maxSessions: config.maxSessions, log });
    const pendingLogins = createPendingLogins({ db, sealer: createSealer(sessionKey, "pending-login"), now, max: config.maxPendingLogins });
    const sessions = createSessions({
      store,
      alsoSweep: (at) => pendingLogins.deleteExpired(at),
      idleTimeoutMs: config.sessionIdleTimeoutMs,
      maxAgeMs: config.sessionMaxAgeMs,
      now,
      refresh: (token) => rp.refresh(token),
      log,
    });
    cleanup.defer(() => sessions.close());

    const auth: AuthContext = { log, sessions, pendingLogins, relyingParty: rp, publicOrigin };
    const api: ApiContext = {
      log,
      sessions,
      publicOrigin,
      routes: apiRoutes(),
      upstreams: config.upstreams,
      pool: upstreamPool,
      upstreamTimeoutMs: config.upstreamTimeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS,
    };

    handle = async (req, res) => {
      const raw = req.url ?? "/";
      if (!raw.startsWith("/")) {
        sendText(res, 400, "bad request");
        return;
      }
      const q = raw.indexOf("?");
      const pathname = q < 0 ? raw : raw.slice(0, q);
      const rawQuery = q < 0 ? "" : raw.slice(q + 1);
      const method = req.method ?? "GET";
      const read = method === "GET" || method === "HEAD";

      if (pathname === "/licensing" || pathname.startsWith("/licensing/")) {
        if (!read) return notAllowed(res, "GET, HEAD");
        if (!(await webRoot.built())) {
          sendText(res, 503, NOT_BUILT_MESSAGE);
          return;
        }
        const session = await sessionOf(req, res, sessions);
        if (!session) {
          redirect(res, `/auth/login?return=${encodeURIComponent(safeReturnPath(raw))}`);
          return;
        }
        // Opening a screen is activity.
        await sessions.touch(session);
        await webRoot.sendIndex(res, method === "HEAD");
        return;
      }
      if (pathname.startsWith("/assets/")) {
        if (!read) return notAllowed(res, "GET, HEAD");
        await webRoot.sendAsset(res, pathname.slice("/assets/".length), method === "HEAD", req.headers["accept-encoding"]);
        return;
      }
      if (pathname.startsWith("/api/")) {
        if (method !== "POST") return notAllowed(res, "POST");
        await forwardApiCall(api, req, res, pathname);
        return;
      }
      if (pathname === OPENAPI_PATH && read) {
        sendOpenApi(res, method === "HEAD");
        return;
      }
      const owner = httpPathOwner(method, pathname);
      if (owner !== undefined) {
        await forwardHttpPath({ upstreams: config.upstreams, pool: upstreamPool, timeoutMs: api.upstreamTimeoutMs, log }, owner, req, res, raw);
        return;
      }
      switch (pathname) {
        case "/":
          if (!read) return notAllowed(res, "GET, HEAD");
          redirect(res, "/licensing");
          return;
        case "/auth/login":
          if (!read) return notAllowed(res, "GET");
          await login(auth, req, res, new URLSearchParams(rawQuery));
          return;
        case "/auth/callback":
          if (!read) return notAllowed(res, "GET");
          await callback(auth, req, res, rawQuery);
          return;
        case "/auth/session":
          if (!read) return notAllowed(res, "GET");
          await sessionInfo(auth, req, res);
          return;
        case "/auth/logout":
          if (method !== "POST") return notAllowed(res, "POST");
          await logout(auth, req, res);
          return;
        case "/auth/signed-out":
          if (!read) return notAllowed(res, "GET");
          signedOut(res);
          return;
        case "/healthz":
          // Liveness for `npm start`, tests and probes: the process answers. It says nothing of
          // the services or the issuer, which the screens report themselves.
          if (!read) return notAllowed(res, "GET, HEAD");
          sendText(res, 200, "ok");
          return;
        case "/readyz": {
          // Readiness for a load balancer or kubelet (also on ADMIN_PORT): this replica can sign
          // browsers in and serve their sessions, i.e. its database answers.
          if (!read) return notAllowed(res, "GET, HEAD");
          const state = readiness();
          sendText(res, state.ready ? 200 : 503, state.ready ? "ready" : `not ready: ${state.reason.replace(/[\r\n]+/g, " ").slice(0, 200)}`);
          return;
        }
        default:
          sendText(res, 404, "not found");
      }
    };

    started = true;
    const url = `https://localhost:${port}`;
    log.info({ url, publicUrl: publicOrigin, issuer: config.oidc.issuer, webRoot: config.webRoot, tls: config.tls.source }, "console ready");
    return { url, port, publicUrl: publicOrigin, adminPort, close: cleanup.close };
  } catch (err) {
    await cleanup.close();
    throw err;
  }
}

function notAllowed(res: ServerResponse, allow: string): void {
  res.setHeader("allow", allow);
  res.setHeader("connection", "close");
  sendText(res, 405, "method not allowed");
}

/** The path of a request target, without its query (which may hold codes and states). */
function pathOf(url: string | undefined): string {
  if (!url) return "/";
  const q = url.indexOf("?");
  return q < 0 ? url : url.slice(0, q);
}
