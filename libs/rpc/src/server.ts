import { createHash, hkdfSync, X509Certificate } from "node:crypto";
import { setMaxListeners } from "node:events";
import * as http2 from "node:http2";
import type { Socket } from "node:net";
import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { ServiceName } from "@lcp/domain";
import { splitPemCertificates } from "@lcp/pki";
import { Health } from "@lcp/proto/grpc/health/v1/health_pb";
import type { Logger } from "pino";
import {
  createAuthenticator,
  peerFromSocket,
  peerKey,
  type AdminTokenVerifierLike,
  type ApplianceCheck,
} from "./authn.js";
import { shuttingDownError } from "./errors.js";
import { createHealth, type HealthService } from "./health.js";
import { admitCall, createServerInterceptor, requestIdFrom, REQUEST_ID_HEADER, type DeniedEvent } from "./interceptors.js";
import { createLogger } from "./logger.js";
import { createMetrics, METRICS_PATH, type RpcMetrics } from "./metrics.js";
import type { Rule } from "./policy.js";
import { ANONYMOUS, type AppliancePrincipal } from "./principal.js";
import { isRawGrpcRequest, RawCall, type RawCallGate, type RawStreamHandler } from "./raw-stream.js";
import { registerReflection } from "./reflection.js";
import { coalesceDenials, DEFAULT_DENIED_AUDIT_WINDOW_MS } from "./denial-audit.js";
import { createPublicStreamBudget, DEFAULT_MAX_PUBLIC_STREAMS } from "./public-streams.js";
import { connectionLimitsOf, createConnectionGuards, type ConnectionLimits } from "./connections.js";

/** The listener's TLS material, PEM-encoded. */
export interface ServerTls {
  /** The server certificate (chain), presented to every client. */
  readonly certPem: string;
  readonly keyPem: string;
  /** The platform CA(s): trusted for client certificates, the only issuers of service identities. */
  readonly caPem: string;
}

/** How long a TLS handshake may take before the socket is dropped, by default (node's default is 120 s). */
export const HANDSHAKE_TIMEOUT_MS = 10_000;
/** Size of the stored session-ticket secret (node's `ticketKeys`: key name, HMAC key, AES key). */
export const TICKET_SECRET_BYTES = 48;
/**
 * How long a session ticket may be resumed, by default: 7 days, TLS 1.3's maximum (RFC 8446
 * §4.6.1; OpenSSL caps the lifetime it announces there and clients drop older tickets). Node
 * issues no new ticket on a resumed connection, so a box's ticket dates from its last full
 * handshake: a short lifetime (node's default is 300 s) would leave every box that has held its
 * stream for more than that with a stale ticket when the server dies. Resuming re-checks what can
 * change meanwhile (validity dates here; revoked serials and the trust set per call in authn, and
 * the trust set in the ticket key), so the lifetime does not stretch any verdict.
 */
export const DEFAULT_TICKET_LIFETIME_S = 7 * 86_400;

/** TLS session resumption across restarts and replicas: tickets any process with the same secret and trust set accepts. */
export interface SessionTicketOptions {
  /**
   * {@link TICKET_SECRET_BYTES} random bytes, the same across restarts (and replicas). Whoever
   * holds them can mint a ticket naming any client certificate the trust set accepts: guard the
   * file like a private key (0600, never logged).
   */
  readonly secret: Uint8Array;
  /** Seconds a ticket may be resumed after the full handshake that issued it. Default {@link DEFAULT_TICKET_LIFETIME_S}. */
  readonly lifetimeS?: number;
}
/** The listen backlog asked for; the kernel caps it at net.core.somaxconn. */
const LISTEN_BACKLOG = 4_096;

/** Options of `createServer`. */
export interface ServerOptions {
  /** The app this server belongs to (its SPIFFE service name); used in logs. */
  readonly name: ServiceName;
  /** Interface to bind; default `"127.0.0.1"`. Use `"::"` or `"0.0.0.0"` to serve the network. */
  readonly host?: string;
  /** TCP port; 0 picks a free one (tests). */
  readonly port: number;
  readonly tls: ServerTls;
  /** The SPIFFE trust domain client identities must belong to (e.g. `lcp.local`). */
  readonly trustDomain: string;
  /** Appliance CA certificates (PEM) whose appliance identities this listener accepts. */
  readonly applianceCa?: readonly string[];
  /**
   * Refuse the TLS handshake without a certificate that chains to a trusted CA, instead of
   * letting the call proceed anonymously. For listeners that serve no public RPC.
   */
  readonly requireClientCertificate?: boolean;
  /** Admin bearer-token verifier; without it this server accepts no admin tokens. */
  readonly adminTokens?: AdminTokenVerifierLike;
  /** Per-call check of appliance certificates (e.g. refuse revoked serials). */
  readonly checkAppliance?: (principal: AppliancePrincipal) => Promise<ApplianceCheck>;
  /**
   * Called for refused calls (apps audit `authz.denied` through their outbox): the first of a kind
   * at once, its repeats within `deniedAuditWindowMs` as one summary (libs/rpc denial-audit.ts).
   */
  readonly onDenied?: (event: DeniedEvent) => void | Promise<void>;
  /** How long repeats of one refusal are counted into one summary. Default 60 s; 0: each refusal alone. */
  readonly deniedAuditWindowMs?: number | undefined;
  /**
   * Recognises a handler error that means a dependency is down for now (pass persistence's
   * `isConnectionError`): answered Unavailable, so clients retry, instead of Internal.
   */
  readonly transientError?: (err: unknown) => boolean;
  /** Default: `createLogger(name)`. */
  readonly logger?: Logger;
  /** Registers the app's services: `router.service(LicensingService, impl)`. */
  readonly register: (router: ConnectRouter) => void;
  /** Largest accepted request message; larger ones answer ResourceExhausted. Default 1 MiB. */
  readonly maxReceiveMessageBytes?: number;
  /** How long `close()` waits for in-flight calls before cutting connections. Default 10 s. */
  readonly shutdownGraceMs?: number;
  /**
   * Session-ticket keys that survive a restart, so clients that kept a ticket resume (no
   * signature, no client chain check) when they redial after a crash. Without it node makes
   * per-process keys: tickets die with the process. The effective key is derived from the secret
   * and the trust set, so `setApplianceTrust` (or a restart with another trust set) invalidates
   * every ticket issued under the old one.
   */
  readonly sessionTickets?: SessionTicketOptions;
  /** How long a TLS handshake may take before the socket is dropped. Default {@link HANDSHAKE_TIMEOUT_MS}. */
  readonly handshakeTimeoutMs?: number;
  /**
   * Streams per connection, idle timeout, keepalive pings (connections.ts); each unset one takes
   * its `DEFAULT_CONNECTION_LIMITS` value.
   */
  readonly connectionLimits?: Partial<ConnectionLimits> | undefined;
  /**
   * Unauthenticated streams (health Watch, reflection) open at once on this server, over all
   * connections; more are answered ResourceExhausted. Default {@link DEFAULT_MAX_PUBLIC_STREAMS}.
   */
  readonly maxPublicStreams?: number | undefined;
  /** Policy table override (tests only); the system `POLICY` otherwise. */
  readonly policy?: Readonly<Record<string, Rule>>;
  /**
   * The metrics served at `GET /metrics`; default `createMetrics({ app: name })`. Pass your own
   * when handlers built inside `register` need their counters before the server exists.
   */
  readonly metrics?: RpcMetrics;
  /**
   * Methods served directly on `node:http2` streams, by path (`/pkg.Service/Method`), for plain
   * binary gRPC requests only; everything else on the path (Connect, gRPC-Web, JSON, compressed)
   * still goes to the Connect stack. Calls are admitted (authn, policy, onDenied) before the
   * handler sees them, and counted for graceful shutdown like any call. See raw-stream.ts.
   */
  readonly rawStreams?: Readonly<Record<string, RawStreamHandler>>;
}

/** A running server. */
export interface RpcServer {
  /** `https://localhost:<port>` (the dev certificates name localhost). */
  readonly url: string;
  readonly port: number;
  /** The health statuses this server reports; apps may mark dependencies NOT_SERVING. */
  readonly health: HealthService;
  /** The services registered by the app (not health/reflection). */
  readonly services: readonly DescService[];
  /**
   * This server's Prometheus registry (served at `GET /metrics`, public like health) with the
   * built-in call metrics; apps add theirs with `metrics.counter/gauge/histogram`.
   */
  readonly metrics: RpcMetrics;
  /**
   * Replaces the trusted appliance CAs, both for new TLS handshakes and for the per-call chain
   * check (so calls on already-open connections from a CA that was dropped are refused too).
   */
  setApplianceTrust(pems: readonly string[]): void;
  /**
   * Graceful shutdown: stop accepting, mark every service NOT_SERVING, end streams through the
   * shutdown signal, wait up to `shutdownGraceMs` for in-flight calls, then cut what remains.
   * Idempotent; resolves even when clients misbehave.
   */
  close(): Promise<void>;
}

const DEFAULT_MAX_RECEIVE = 1024 * 1024;
const DEFAULT_GRACE_MS = 10_000;

/**
 * Starts one TLS listener serving Connect, gRPC and gRPC-Web (HTTP/2, HTTP/1.1 allowed for the
 * Connect protocol) with authentication, the system policy, error mapping, logging, health,
 * reflection for every registered service (docs/design.md §4) and Prometheus metrics at `/metrics`.
 */
export async function createServer(options: ServerOptions): Promise<RpcServer> {
  const log = options.logger ?? createLogger(options.name);
  const denials = options.onDenied
    ? coalesceDenials(options.onDenied, { windowMs: options.deniedAuditWindowMs ?? DEFAULT_DENIED_AUDIT_WINDOW_MS, logger: log })
    : undefined;
  const platformPems = splitPemCertificates(options.tls.caPem);
  if (platformPems.length === 0) throw new TypeError("tls.caPem holds no certificate");
  const platformCas = platformPems.map((pem) => new X509Certificate(pem));
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
  const handler = connectNodeAdapter({
    routes(router) {
      options.register(router);
      services = [...new Set(router.handlers.map((h) => h.service))];
      health.setStatus("", "SERVING");
      for (const s of services) health.setStatus(s.typeName, "SERVING");
      health.routes(router);
      registerReflection(router, [...services, Health], publicStreams);
    },
    interceptors: [
      createServerInterceptor({
        authenticate,
        logger: log,
        onDenied: denials?.onDenied,
        policy: options.policy,
        metrics: metrics.rpc,
        transientError: options.transientError,
      }),
    ],
    contextValues: (req) =>
      createContextValues().set(peerKey, peerFromSocket(req.socket, connectionOf(req))),
    shutdownSignal: shutdown.signal,
    readMaxBytes: options.maxReceiveMessageBytes ?? DEFAULT_MAX_RECEIVE,
  });

  const tickets = options.sessionTickets;
  if (tickets) validateTickets(tickets);
  const handshakeTimeoutMs = options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  if (!Number.isFinite(handshakeTimeoutMs) || handshakeTimeoutMs <= 0) {
    throw new TypeError(`handshakeTimeoutMs must be a positive number of milliseconds, got ${handshakeTimeoutMs}`);
  }
  const secure = (): http2.SecureServerOptions => ({
    key: options.tls.keyPem,
    cert: options.tls.certPem,
    // One trust store for the handshake; which CA may vouch for which kind of identity is
    // decided per call in authn (chainsTo), so this union never lets an appliance CA mint a
    // service identity.
    ca: [...platformPems, ...appliancePems],
    minVersion: "TLSv1.2",
    // Node's default context id hashes process.argv: a restart with another command line would
    // refuse every ticket (OpenSSL resumes a client-authenticated session only in its context).
    sessionIdContext: createHash("sha256").update(`lcp/${options.name}`).digest("hex").slice(0, 32),
    ...(tickets
      ? { ticketKeys: ticketKeysFor(tickets.secret, platformCas, applianceCas), sessionTimeout: tickets.lifetimeS ?? DEFAULT_TICKET_LIFETIME_S }
      : {}),
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
    metrics.render().then(
      (body) => {
        res.writeHead(200, { "content-type": metrics.contentType, "cache-control": "no-store" });
        if (method === "HEAD") res.end();
        else res.end(body);
      },
      (err: unknown) => {
        // A failing collect callback (e.g. an outbox query) must not take the endpoint down
        // silently; the scrape fails and the cause is logged.
        log.error({ err }, "metrics collection failed");
        res.writeHead(500, { "content-type": "text/plain" }).end("metrics collection failed\n");
      },
    );
  }

  const rawStreams = new Map(Object.entries(options.rawStreams ?? {}));
  if (rawStreams.size > 0) {
    // node's compatibility layer (the request handler above) is itself a "stream" listener; put a
    // dispatcher in front of it so raw paths skip the per-request compat objects entirely.
    const compat = server.listeners("stream") as ((...args: unknown[]) => void)[];
    if (compat.length !== 1) throw new Error("createServer: expected node's http2 compat stream listener");
    server.removeAllListeners("stream");
    const gate: RawCallGate = {
      log,
      metrics: metrics.rpc,
      transientError: options.transientError,
      maxMessageBytes: options.maxReceiveMessageBytes ?? DEFAULT_MAX_RECEIVE,
    };
    server.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, ...rest: unknown[]) => {
      const handler = rawStreams.get(headers[":path"] ?? "");
      if (handler && isRawGrpcRequest(headers)) serveRaw(handler, gate, stream, headers);
      else compat[0]!.call(server, stream, headers, ...rest);
    });
  }

  function serveRaw(handler: RawStreamHandler, gate: RawCallGate, stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    inFlight++;
    stream.once("close", callEnded);
    // A reset or a broken connection is that client's business; without a listener it would throw.
    stream.on("error", ignoreStreamError);
    const path = headers[":path"]!;
    const slash = path.lastIndexOf("/");
    const service = path.slice(1, slash);
    const method = path.slice(slash + 1);
    const offered = headers[REQUEST_ID_HEADER];
    const requestId = requestIdFrom(typeof offered === "string" ? offered : undefined);
    const startedAt = performance.now();
    const session = stream.session;
    // Not cached for the connection's life: see peerFromSocket (memory per held stream).
    const peer = session ? peerFromSocket(session.socket, session, false) : undefined;
    // Only the credential headers authn reads; a Fetch Headers of everything is not needed.
    const header = new Headers();
    if (typeof headers.authorization === "string") header.set("authorization", headers.authorization);
    admitCall({ authenticate, logger: log, policy: options.policy, onDenied: denials?.onDenied }, peer, header, `${service}/${method}`, requestId).then(
      ({ principal, refused }) => {
        const call = new RawCall(gate, stream, service, method, requestId, principal, startedAt);
        if (refused) return call.end(refused);
        if (stream.destroyed || stream.closed) return call.cancel();
        if (shutdown.signal.aborted) return call.end(shuttingDownError());
        handler.serve(stream, headers, call);
      },
      (err: unknown) => new RawCall(gate, stream, service, method, requestId, ANONYMOUS, startedAt).end(err),
    );
  }

  /** A call (Connect or raw) is over: the one place graceful shutdown learns it. Fires once per call ("close" is emitted once). */
  function callEnded(): void {
    inFlight--;
    if (inFlight === 0) drained?.();
  }

  function ignoreStreamError(err: Error): void {
    log.debug({ err: err.message }, "raw stream error");
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
    close() {
      closing ??= doClose();
      return closing;
    },
  };
}

function validateTickets(tickets: SessionTicketOptions): void {
  if (tickets.secret.byteLength !== TICKET_SECRET_BYTES) {
    throw new TypeError(`sessionTickets.secret must be ${TICKET_SECRET_BYTES} bytes, got ${tickets.secret.byteLength}`);
  }
  const lifetime = tickets.lifetimeS;
  if (lifetime !== undefined && (!Number.isInteger(lifetime) || lifetime < 1 || lifetime > DEFAULT_TICKET_LIFETIME_S)) {
    throw new TypeError(`sessionTickets.lifetimeS must be a whole number of seconds from 1 to ${DEFAULT_TICKET_LIFETIME_S}`);
  }
}

/**
 * The 48-byte `ticketKeys` for a secret under a trust set: HKDF-SHA256 of the secret, salted with
 * the trusted CAs' fingerprints (platform and appliance apart, each sorted), so the same secret and
 * trust set give the same key in every process, and any change to the trust set gives another.
 */
function ticketKeysFor(secret: Uint8Array, platformCas: readonly X509Certificate[], applianceCas: readonly X509Certificate[]): Buffer {
  const fingerprints = (cas: readonly X509Certificate[]) => cas.map((ca) => ca.fingerprint256).sort().join(",");
  const salt = createHash("sha256").update(`platform:${fingerprints(platformCas)};appliance:${fingerprints(applianceCas)}`).digest();
  return Buffer.from(hkdfSync("sha256", secret, salt, "lcp tls session tickets v1", TICKET_SECRET_BYTES));
}

/**
 * OpenSSL's code for a peer chain (leaf and the issuers it was verified with) that is not valid at
 * `now`, or undefined: what a full handshake would report for it. `trusted` are the listener's CA lists.
 */
function outOfDate(socket: TLSSocket, trusted: readonly (readonly X509Certificate[])[], now: number): string | undefined {
  // The leaf as an X509Certificate, and its issuer from our own parsed trust store: building
  // getPeerCertificate(true) parses the whole chain on every call, and this runs on each
  // resumed connection of a reconnect storm. Only a chain with intermediates takes the slow walk.
  const leaf = socket.getPeerX509Certificate();
  if (!leaf) return undefined;
  let issuer: X509Certificate | undefined;
  for (const cas of trusted) issuer ??= cas.find((ca) => leaf.checkIssued(ca));
  const chain = issuer ? [leaf, issuer] : peerChain(socket);
  for (const cert of chain) {
    if (now < Date.parse(cert.validFrom)) return "CERT_NOT_YET_VALID";
    if (now > Date.parse(cert.validTo)) return "CERT_HAS_EXPIRED";
  }
  return undefined;
}

/** The peer's chain as OpenSSL verified it, leaf first, up to the root. */
function peerChain(socket: TLSSocket): { validFrom: string; validTo: string }[] {
  const chain: { validFrom: string; validTo: string }[] = [];
  let cert = socket.getPeerCertificate(true);
  const seen = new Set<string>();
  while (cert && cert.raw && !seen.has(cert.fingerprint256)) {
    seen.add(cert.fingerprint256);
    chain.push({ validFrom: cert.valid_from, validTo: cert.valid_to });
    cert = cert.issuerCertificate;
  }
  return chain;
}

function isMetricsPath(url: string): boolean {
  const q = url.indexOf("?");
  return (q === -1 ? url : url.slice(0, q)) === METRICS_PATH;
}

/** The object identifying a request's connection: the HTTP/2 session, or the HTTP/1.1 socket. */
function connectionOf(req: { socket: object; stream?: { session?: object } }): object {
  return req.stream?.session ?? req.socket;
}
