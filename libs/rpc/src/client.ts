import { isIP } from "node:net";
import { connect, createSecureContext, type SecureContext, type TLSSocket } from "node:tls";
import type { DescService } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient as createConnectClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { tracingClientInterceptor } from "./tracing.js";

/** TLS for a client: the CA that vouches for the server, and optionally our own certificate. */
export interface ClientTls {
  /** The platform CA (PEM) the server's certificate must chain to. */
  readonly caPem: string;
  /** Our client certificate (PEM): a service identity (mTLS) or an appliance's. */
  readonly certPem?: string;
  readonly keyPem?: string;
}

/** Options of `createClient`. */
export interface ClientOptions {
  /** `https://host:port` of the server. */
  readonly baseUrl: string;
  /**
   * Our TLS material, or a function giving the current one (a service whose certificate is
   * rotated while it runs): read for each new connection, so a renewed client certificate is
   * presented from the next connection on, while open ones keep theirs.
   */
  readonly tls: ClientTls | (() => ClientTls);
  /** Deadline of each call unless the call sets its own. Default 10 s. */
  readonly timeoutMs?: number;
  /** Extra attempts for safe unary calls that failed with Unavailable/ResourceExhausted. Default 3. */
  readonly retries?: number;
  /** Wire protocol; default gRPC (what every server and tool here speaks). */
  readonly protocol?: "grpc" | "connect";
  /** Extra interceptors, run inside the retry loop (e.g. a bearer token). */
  readonly interceptors?: readonly Interceptor[];
  /** Base delay of the exponential backoff between retries. Default 100 ms. */
  readonly retryBaseDelayMs?: number;
}

/**
 * A typed client for one service over TLS (mTLS when `tls.certPem` is given), e.g. licensing
 * calling `SigningKeyService.Sign` with its service certificate.
 */
export function createClient<T extends DescService>(service: T, options: ClientOptions): Client<T> {
  const nodeOptions = typeof options.tls === "function" ? { createConnection: connectWithCurrent(options.tls) } : tlsOptionsOf(options.tls);
  // First in the array = outermost.
  const interceptors = [
    // One trace span per call, retries included, and the trace context sent along (a no-op
    // while tracing is off).
    tracingClientInterceptor,
    // Every retry goes through the interceptors after it again.
    retryInterceptor(options.retries ?? 3, options.retryBaseDelayMs ?? 100),
    refusedIsUnavailable,
    ...(options.interceptors ?? []),
  ];
  const common = {
    baseUrl: options.baseUrl,
    defaultTimeoutMs: options.timeoutMs ?? 10_000,
    interceptors,
  };
  const transport =
    options.protocol === "connect"
      ? createConnectTransport({ ...common, httpVersion: "2", nodeOptions })
      : createGrpcTransport({ ...common, nodeOptions });
  return createConnectClient(service, transport);
}

function tlsOptionsOf(tls: ClientTls): { ca: string; cert?: string; key?: string } {
  return { ca: tls.caPem, ...(tls.certPem ? { cert: tls.certPem } : {}), ...(tls.keyPem ? { key: tls.keyPem } : {}) };
}

/**
 * A `createConnection` for http2.connect (connect-node's session manager) that opens each new
 * connection, as http2.connect would (ALPN h2, SNI for names only), with the material `current()`
 * gives then; its secure context is built once per material, not per connection.
 */
function connectWithCurrent(current: () => ClientTls): (authority: URL) => TLSSocket {
  let built: { from: ClientTls; context: SecureContext } | undefined;
  return (authority) => {
    const tls = current();
    if (built?.from !== tls) built = { from: tls, context: createSecureContext(tlsOptionsOf(tls)) };
    const host = authority.hostname.startsWith("[") ? authority.hostname.slice(1, -1) : authority.hostname;
    return connect({
      host,
      port: Number(authority.port || 443),
      ...(isIP(host) === 0 ? { servername: host } : {}),
      ALPNProtocols: ["h2"],
      secureContext: built.context,
    });
  };
}

/** Options of `createAdminClient`. */
export interface AdminClientOptions {
  readonly baseUrl: string;
  /** The platform CA (PEM). */
  readonly caPem: string;
  /** The admin bearer token, or a function returning a fresh one per call. */
  readonly token: string | (() => string | Promise<string>);
  readonly timeoutMs?: number;
  readonly retries?: number;
  readonly protocol?: "grpc" | "connect";
}

/** A typed client that authenticates as an admin with a bearer token (tests, tools, scripts). */
export function createAdminClient<T extends DescService>(service: T, options: AdminClientOptions): Client<T> {
  const bearer: Interceptor = (next) => async (req) => {
    const token = typeof options.token === "function" ? await options.token() : options.token;
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  return createClient(service, {
    baseUrl: options.baseUrl,
    tls: { caPem: options.caPem },
    timeoutMs: options.timeoutMs,
    retries: options.retries,
    protocol: options.protocol,
    interceptors: [bearer],
  });
}

/**
 * A stream the server refused (HTTP/2 REFUSED_STREAM: it arrived after the server's GOAWAY, as a
 * server closes) was never processed; gRPC reads it as Unavailable. connect-node reports it as
 * Internal when node surfaces it as a stream error rather than a reset code, which the retry
 * below would not retry: mapped here, so an idempotent call refused by a closing replica is tried
 * again (on a new connection) like any other Unavailable.
 */
const refusedIsUnavailable: Interceptor = (next) => async (req) => {
  try {
    return await next(req);
  } catch (err) {
    if (!(err instanceof ConnectError && err.code === Code.Internal && isRefusedStream(err.cause))) throw err;
    throw new ConnectError("the server refused the call (it is shutting down); it was not processed", Code.Unavailable, err.metadata, undefined, err);
  }
};

/** node's error for a stream the peer reset with REFUSED_STREAM. */
function isRefusedStream(cause: unknown): boolean {
  const e = cause as { code?: unknown; message?: unknown } | undefined;
  return e?.code === "ERR_HTTP2_STREAM_ERROR" && String(e.message).includes("NGHTTP2_REFUSED_STREAM");
}

// Only errors that say "nothing happened, try again": Unavailable (connection refused/reset,
// shutting down) and ResourceExhausted (overload). A DeadlineExceeded call may have run.
const RETRYABLE = new Set([Code.Unavailable, Code.ResourceExhausted]);
const SAFE = new Set([MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS, MethodOptions_IdempotencyLevel.IDEMPOTENT]);

/**
 * Retries unary calls of methods the contract declares safe to repeat (`idempotency_level`
 * NO_SIDE_EFFECTS or IDEMPOTENT) — never a call that may have changed something, such as
 * `IssueLicense` or `Sign`. Backoff is exponential with full jitter, within the call's deadline.
 */
export function retryInterceptor(retries: number, baseDelayMs = 100): Interceptor {
  return (next) => async (req) => {
    if (req.stream || retries <= 0 || !SAFE.has(req.method.idempotency)) return next(req);
    for (let attempt = 0; ; attempt++) {
      try {
        return await next(req);
      } catch (err) {
        const error = ConnectError.from(err);
        if (attempt >= retries || !RETRYABLE.has(error.code) || req.signal.aborted) throw err;
        const delay = Math.random() * Math.min(baseDelayMs * 2 ** attempt, 2_000);
        await sleep(delay, req.signal);
        if (req.signal.aborted) throw err;
      }
    }
  };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
