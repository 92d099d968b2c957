import { createHash, randomBytes, X509Certificate } from "node:crypto";
import { setMaxListeners } from "node:events";
import * as http2 from "node:http2";
import type { Socket } from "node:net";
import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { splitPemCertificates } from "@lcp/pki";
import { Health } from "@lcp/proto/grpc/health/v1/health_pb";
import { createAuthenticator, peerFromSocket, peerKey } from "./authn.js";
import { createHealth } from "./health.js";
import { createHttpGateway } from "./http-gateway.js";
import { OPENAPI_PATH, sendOpenApi } from "./openapi.js";
import { createServerInterceptor } from "./interceptors.js";
import { createLogger } from "./logger.js";
import { createMetrics, METRICS_PATH, sendMetrics } from "./metrics.js";
import type { RawCallGate } from "./raw-stream.js";
import { installRawDispatch } from "./raw-dispatch.js";
import { registerReflection } from "./reflection.js";
import { coalesceDenials, DEFAULT_DENIED_AUDIT_WINDOW_MS } from "./denial-audit.js";
import { createPublicStreamBudget, DEFAULT_MAX_PUBLIC_STREAMS } from "./public-streams.js";
import { connectionLimitsOf, createConnectionGuards } from "./connections.js";
import { DEFAULT_TICKET_LIFETIME_S, HANDSHAKE_TIMEOUT_MS, TICKET_SECRET_BYTES, type RpcServer, type ServerOptions } from "./server-options.js";
import { checkServerTls, TlsMaterialError } from "./tls-material.js";
import { outOfDate, ticketKeysFor, validateTickets } from "./tls-sessions.js";

export * from "./server-options.js";

/** The listen backlog asked for; the kernel caps it at net.core.somaxconn. */
const LISTEN_BACKLOG = 4_096;

const DEFAULT_MAX_RECEIVE = 1024 * 1024;
const DEFAULT_GRACE_MS = 10_000;

/**
 * Starts one TLS listener serving Connect, gRPC and gRPC-Web (HTTP/2, HTTP/1.1 allowed for the
 * Connect protocol) with authentication, the system policy, error mapping, logging, health,
 * reflection for every registered service (docs/design.md §4), Prometheus metrics at `/metrics`,
 * and the HTTP paths of the registered services' `google.api.http` rules (http-gateway.ts), which
 * go through the same Connect handlers and interceptors.
 */
export async function createServer(options: ServerOptions): Promise<RpcServer> {
  const log = options.logger ?? createLogger(options.name);
  const denials = options.onDenied
    ? coalesceDenials(options.onDenied, { windowMs: options.deniedAuditWindowMs ?? DEFAULT_DENIED_AUDIT_WINDOW_MS, logger: log })
    : undefined;
  // The served certificate and the platform CAs: replaced together by setTls, never mutated.
  let tls = options.tls;
  let platformPems = splitPemCertificates(tls.caPem);
  if (platformPems.length === 0) throw new TypeError("tls.caPem holds no certificate");
  let platformCas = platformPems.map((pem) => new X509Certificate(pem));
  let appliancePems = [...(options.applianceCa ?? [])].flatMap(splitPemCertificates);
  // Replaced, never mutated: authn caches per connection against the array's identity.
  let applianceCas = appliancePems.map((pem) => new X509Certificate(pem));

  const publicStreams = createPublicStreamBudget(options.maxPublicStreams ?? DEFAULT_MAX_PUBLIC_STREAMS);
  const guards = createConnectionGuards(connectionLimitsOf(options.connectionLimits), log);
  const health = createHealth(publicStreams);
  const metrics = options.metrics ?? createMetrics({ app: options.name });
  const shutdown = new AbortController();
  // connect-node links every call's signal to this one: one listener per call in flight, so the
  // default limit of 10 only produces a false leak warning under ordinary concurrency.
  setMaxListeners(0, shutdown.signal);
  const authenticate = createAuthenticator({
    trustDomain: options.trustDomain,
    platformCas: () => platformCas,
    applianceCas: () => applianceCas,
    adminTokens: options.adminTokens,
    checkAppliance: options.checkAppliance,
  });

  let services: DescService[] = [];
  const maxReceive = options.maxReceiveMessageBytes ?? DEFAULT_MAX_RECEIVE;
  const contextValues = (req: http2.Http2ServerRequest) => createContextValues().set(peerKey, peerFromSocket(req.socket, connectionOf(req)));
  // Set once the routes are registered: paths Connect does not serve go to the HTTP rules first.
  let httpRules: ((req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void) | undefined;
  const handler = connectNodeAdapter({
    routes(router) {
      options.register(router);
      services = [...new Set(router.handlers.map((h) => h.service))];
      // Only the registered services' rules: each listener answers for the RPCs it owns.
      httpRules = createHttpGateway({ handlers: [...router.handlers], maxBodyBytes: maxReceive, contextValues, fallback: notFound, logger: log, metrics });
      health.setStatus("", "SERVING");
      for (const s of services) health.setStatus(s.typeName, "SERVING");
      health.routes(router);
      registerReflection(router, [...services, Health], publicStreams);
    },
    interceptors: [
      createServerInterceptor({
        app: options.name,
        authenticate,
        logger: log,
        onDenied: denials?.onDenied,
        policy: options.policy,
        metrics: metrics.rpc,
        transientError: options.transientError,
      }),
    ],
    contextValues: (req) => contextValues(req as http2.Http2ServerRequest),
    fallback: (req, res) => {
      if (serveOpenApi(req as http2.Http2ServerRequest, res as http2.Http2ServerResponse)) return;
      (httpRules ?? notFound)(req as http2.Http2ServerRequest, res as http2.Http2ServerResponse);
    },
    shutdownSignal: shutdown.signal,
    readMaxBytes: maxReceive,
  });

  const tickets = options.sessionTickets;
  if (tickets) validateTickets(tickets);
  // Without a stored secret, one per process: the ticket key is still derived from it (so it
  // changes with the trust set), and a certificate reload (setSecureContext) keeps it instead of
  // letting node draw a new one, which would cost every client its ticket.
  let ticketSecret: Uint8Array = tickets?.secret ?? randomBytes(TICKET_SECRET_BYTES);
  const handshakeTimeoutMs = options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  if (!Number.isFinite(handshakeTimeoutMs) || handshakeTimeoutMs <= 0) {
    throw new TypeError(`handshakeTimeoutMs must be a positive number of milliseconds, got ${handshakeTimeoutMs}`);
  }
  const secure = (): http2.SecureServerOptions => ({
    key: tls.keyPem,
    cert: tls.certPem,
    // One trust store for the handshake; which CA may vouch for which kind of identity is
    // decided per call in authn (chainsTo), so this union never lets an appliance CA mint a
    // service identity.
    ca: [...platformPems, ...appliancePems],
    minVersion: "TLSv1.2",
    // Node's default context id hashes process.argv: a restart with another command line would
    // refuse every ticket (OpenSSL resumes a client-authenticated session only in its context).
    sessionIdContext: createHash("sha256").update(`lcp/${options.name}`).digest("hex").slice(0, 32),
    ticketKeys: ticketKeysFor(ticketSecret, platformCas, applianceCas),
    ...(tickets ? { sessionTimeout: tickets.lifetimeS ?? DEFAULT_TICKET_LIFETIME_S } : {}),
  });

  let inFlight = 0;
  let drained: (() => void) | undefined;
  const server = http2.createSecureServer(
    {
      ...secure(),
      // Certificates are requested, not demanded: admins (bearer tokens) and Activate come
      // without one. An unverified certificate is then refused per call, never trusted.
      requestCert: true,
      rejectUnauthorized: options.requireClientCertificate === true,
      allowHTTP1: true,
      // Node's default is 120 s. After a restart thousands of boxes redial at once; a handshake
      // the busy process cannot finish should fail fast so the box retries on its jittered
      // backoff, rather than hold a socket (and the box) for two minutes.
      handshakeTimeout: handshakeTimeoutMs,
      settings: guards.settings,
    },
    (req, res) => {
      inFlight++;
      res.once("close", callEnded);
      // HTTP/1.1 (typed as HTTP/2 by node's allowHTTP1 overload): one request at a time on the socket.
      if (!("stream" in req)) guards.http1Request((req as unknown as { socket: Socket }).socket, res);
      if ("stream" in req) {
        // The answer is complete but the client is still sending (an oversized message refused
        // with ResourceExhausted): reset the stream right after the trailers. The client already
        // has its status; without the reset the stream stays half-open on a long-lived
        // connection, holding a body nobody will read. CANCEL rather than NO_ERROR because node
        // keeps a NO_ERROR-closed stream alive until its unread input is consumed.
        req.stream.once("wantTrailers", () =>
          setImmediate(() => {
            if (!req.complete && !req.stream.closed) {
              req.stream.close(http2.constants.NGHTTP2_CANCEL);
              req.resume();
            }
          }),
        );
      }
      if (isMetricsPath(req.url)) {
        // Public like health: scrapers carry no client certificate or token, and the figures
        // are counts, not data. Answered before Connect, which 404s every non-RPC path.
        serveMetrics(req.method, res);
        return;
      }
      handler(req, res);
    },
  );

  function serveMetrics(method: string, res: http2.Http2ServerResponse): void {
    if (method !== "GET" && method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    sendMetrics(metrics, res, method === "HEAD", log);
  }

  const rawStreams = new Map(Object.entries(options.rawStreams ?? {}));
  if (rawStreams.size > 0) {
    const gate: RawCallGate = {
      app: options.name,
      log,
      metrics: metrics.rpc,
      transientError: options.transientError,
      maxMessageBytes: maxReceive,
    };
    installRawDispatch(server, {
      handlers: rawStreams,
      gate,
      authenticate,
      log,
      policy: options.policy,
      onDenied: denials?.onDenied,
      shutdown: shutdown.signal,
      track(stream) {
        inFlight++;
        stream.once("close", callEnded);
      },
    });
  }

  /** A call (Connect or raw) is over: the one place graceful shutdown learns it. Fires once per call ("close" is emitted once). */
  function callEnded(): void {
    inFlight--;
    if (inFlight === 0) drained?.();
  }

  const sessions = new Set<http2.ServerHttp2Session>();
  const sockets = new Set<Socket>();
  // Set by close(): whether the server is closing, and what to call once no session is left.
  let shuttingDown = false;
  let sessionsGone: (() => void) | undefined;
  server.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => {
      sessions.delete(session);
      if (sessions.size === 0) sessionsGone?.();
    });
    // A handshake that completes while the server closes: GOAWAY at once, like the others.
    if (shuttingDown) session.close();
    // A session error (peer reset, bad frames) concerns that client only.
    session.on("error", (err) => log.debug({ err }, "http2 session error"));
    guards.session(session);
  });
  // After a restart this says how many clients resumed (cheap) rather than redid the full handshake.
  const tlsConnections = metrics.counter("rpc_server_tls_connections_total", "TLS connections established, by whether the session was resumed from a ticket.", ["resumed"]);
  server.on("secureConnection", (socket: TLSSocket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    tlsConnections.inc({ resumed: socket.isSessionReused() ? "true" : "false" });
    // HTTP/2 connections are guarded per session (above); the rest speak HTTP/1.1 on the socket.
    if (socket.alpnProtocol !== "h2") guards.http1Socket(socket);
    // A resumed session carries the verdict of the handshake that issued its ticket: OpenSSL does
    // not verify the client's chain again, so a certificate that expired since would still read as
    // authorized. Give it the verdict a full handshake would give now (revoked serials and the
    // trust set are checked per call in authn; a changed trust set also changes the ticket key).
    const stale = socket.authorized && socket.isSessionReused() ? outOfDate(socket, [platformCas, applianceCas], Date.now()) : undefined;
    if (stale) {
      socket.authorized = false;
      // Node stores OpenSSL's code string here, whatever its type declaration says.
      socket.authorizationError = stale as unknown as Error;
      if (options.requireClientCertificate === true) socket.destroy();
    }
  });
  server.on("tlsClientError", (err) => log.debug({ err: err.message }, "TLS handshake refused"));

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    // A fleet reconnecting after a restart arrives faster than connections are accepted; node's
    // default backlog (511) would drop SYNs the kernel could have queued (capped by somaxconn).
    server.listen({ port: options.port, host: options.host ?? "127.0.0.1", backlog: LISTEN_BACKLOG }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (err) => log.error({ err }, "server error"));
  const port = (server.address() as AddressInfo).port;
  log.info({ port, host: options.host ?? "127.0.0.1", services: services.map((s) => s.typeName) }, "listening");

  let closing: Promise<void> | undefined;
  const graceMs = options.shutdownGraceMs ?? DEFAULT_GRACE_MS;

  async function doClose(): Promise<void> {
    const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
    shuttingDown = true;
    health.setAll("NOT_SERVING");
    // Give watchers the NOT_SERVING update before their streams are asked to end.
    await new Promise((resolve) => setImmediate(resolve));
    shutdown.abort(new ConnectError("server is shutting down", Code.Unavailable));
    for (const handler of rawStreams.values()) handler.drain();
    // GOAWAY: clients open no new streams here and reconnect elsewhere; open streams continue.
    for (const session of sessions) if (!session.closed) session.close();
    const deadline = performance.now() + graceMs;
    const withinGrace = async (done: Promise<void>) => {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([done, new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, deadline - performance.now()))))]);
      clearTimeout(timer);
    };
    if (inFlight > 0) {
      await withinGrace(new Promise<void>((resolve) => (drained = resolve)));
      if (inFlight > 0) log.warn({ inFlight }, "shutdown grace period over, cutting remaining calls");
    }
    // Every call has answered, but its last frames may still sit in the session's buffers: a
    // session asked to close (GOAWAY, above) closes by itself once they are written. Destroying it
    // sooner drops them, and the caller is told a call failed that did its work (seen: a sweep
    // page committed, its answer reset with CANCEL). So the sessions get the rest of the grace
    // period to close on their own; whatever is left then is cut.
    if (inFlight === 0 && sessions.size > 0) await withinGrace(new Promise<void>((resolve) => (sessionsGone = resolve)));
    for (const session of sessions) session.destroy();
    for (const socket of sockets) socket.destroy();
    await serverClosed;
    // The repeats counted so far are written while the app's database is still open.
    await denials?.flush();
    log.info("stopped");
  }

  return {
    url: `https://localhost:${port}`,
    port,
    health,
    metrics,
    get services() {
      return services;
    },
    setApplianceTrust(pems) {
      const nextPems = pems.flatMap(splitPemCertificates);
      const nextCas = nextPems.map((pem) => new X509Certificate(pem));
      appliancePems = nextPems;
      applianceCas = nextCas;
      server.setSecureContext(secure());
      log.info({ count: nextCas.length }, "appliance trust updated");
    },
    setTls(next) {
      const verdict = checkServerTls(next.tls, Date.now(), tls);
      if (!verdict.ok) throw new TlsMaterialError(verdict.code, verdict.message);
      if (next.ticketSecret !== undefined && next.ticketSecret.byteLength !== TICKET_SECRET_BYTES) {
        throw new TypeError(`ticketSecret must be ${TICKET_SECRET_BYTES} bytes, got ${next.ticketSecret.byteLength}`);
      }
      const before = { tls, platformPems, platformCas, ticketSecret };
      tls = { certPem: next.tls.certPem, keyPem: next.tls.keyPem, caPem: next.tls.caPem };
      platformPems = splitPemCertificates(tls.caPem);
      platformCas = platformPems.map((pem) => new X509Certificate(pem));
      ticketSecret = next.ticketSecret ?? ticketSecret;
      try {
        // New handshakes get the new context; open connections keep the one they were made with,
        // so held streams and HTTP/2 sessions are not touched.
        server.setSecureContext(secure());
      } catch (err) {
        ({ tls, platformPems, platformCas, ticketSecret } = before);
        throw err;
      }
      return { serialNumber: verdict.serialNumber, validTo: verdict.validTo };
    },
    close() {
      closing ??= doClose();
      return closing;
    },
  };
}

/** Connect's answer to a path it does not serve. */
function notFound(_req: unknown, res: http2.Http2ServerResponse): void {
  res.writeHead(404).end();
}

function isMetricsPath(url: string): boolean {
  const q = url.indexOf("?");
  return (q === -1 ? url : url.slice(0, q)) === METRICS_PATH;
}

/** The object identifying a request's connection: the HTTP/2 session, or the HTTP/1.1 socket. */
function connectionOf(req: { socket: object; stream?: { session?: object } }): object {
  return req.stream?.session ?? req.socket;
}

/** Answers `GET`/`HEAD /openapi.json` (query ignored) and returns true; anything else is left alone. */
function serveOpenApi(req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): boolean {
  const path = (req.url ?? "").split("?", 1)[0];
  if (path !== OPENAPI_PATH || (req.method !== "GET" && req.method !== "HEAD")) return false;
  sendOpenApi(res, req.method === "HEAD");
  return true;
}
