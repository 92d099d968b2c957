/**
 * Forwarding one Connect unary call to the service that owns it, over HTTP/2 and TLS trusting the
 * platform CA, with one pooled connection per service (reopened when it closes or is told to go
 * away). Bytes pass through as they are: the console neither decodes nor re-encodes messages.
 */
import type { ServerResponse } from "node:http";
import { connect, constants, type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders } from "node:http2";

/** One call to forward. */
export interface UpstreamCall {
  /** `https://host:port` of the service. */
  readonly origin: string;
  /** `/pkg.Service/Method`, or an HTTP path with its query. */
  readonly path: string;
  /** Default POST (a Connect unary call). */
  readonly method?: string;
  /** Request headers to send (the caller has chosen and bounded them). */
  readonly headers: OutgoingHttpHeaders;
  readonly body: Buffer;
  /** Aborts the call (the browser went away, or the deadline passed). */
  readonly signal: AbortSignal;
}

/** The service's answer: status, headers, and its body as a stream. */
export interface UpstreamResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: NodeJS.ReadableStream;
}

/** The pooled HTTP/2 connections to the services. */
export interface UpstreamPool {
  /** Sends the call; rejects when the service cannot be reached or the call is aborted before an answer. */
  request(call: UpstreamCall): Promise<UpstreamResponse>;
  /** Closes every connection. */
  close(): void;
}

/** A connection with no call for this long is closed (and reopened on the next call). */
const IDLE_MS = 60_000;
const CONNECT_TIMEOUT_MS = 10_000;

/** Creates the pool; `caPem` is the CA the services' certificates must chain to. */
export function createUpstreamPool(options: { readonly caPem: string }): UpstreamPool {
  const sessions = new Map<string, ClientHttp2Session>();

  const sessionFor = (origin: string): ClientHttp2Session => {
    const existing = sessions.get(origin);
    if (existing && !existing.closed && !existing.destroyed) return existing;
    const session = connect(origin, { ca: options.caPem, settings: { enablePush: false } });
    sessions.set(origin, session);
    const forget = () => {
      if (sessions.get(origin) === session) sessions.delete(origin);
    };
    session.on("close", forget);
    session.on("goaway", forget);
    // Errors reach the pending streams; the session itself is just forgotten.
    session.on("error", forget);
    session.setTimeout(IDLE_MS, () => session.close());
    const connectTimer = setTimeout(() => {
      if (!session.connecting) return;
      session.destroy(new Error(`no connection to ${origin} within ${CONNECT_TIMEOUT_MS} ms`));
    }, CONNECT_TIMEOUT_MS);
    connectTimer.unref();
    session.once("connect", () => clearTimeout(connectTimer));
    session.once("close", () => clearTimeout(connectTimer));
    return session;
  };

  return {
    request: (call) =>
      new Promise<UpstreamResponse>((resolve, reject) => {
        if (call.signal.aborted) return reject(new Error("aborted"));
        let stream;
        try {
          // Without a body the request ends with its headers (node does so for GET and HEAD anyway).
          stream = sessionFor(call.origin).request(
            { ...call.headers, [constants.HTTP2_HEADER_METHOD]: call.method ?? "POST", [constants.HTTP2_HEADER_PATH]: call.path },
            { endStream: call.body.length === 0 },
          );
        } catch (err) {
          return reject(err);
        }
        const onAbort = () => stream.close(constants.NGHTTP2_CANCEL);
        call.signal.addEventListener("abort", onAbort, { once: true });
        stream.once("close", () => call.signal.removeEventListener("abort", onAbort));
        stream.once("response", (headers) => {
          resolve({ status: Number(headers[constants.HTTP2_HEADER_STATUS] ?? 502), headers, body: stream });
        });
        stream.once("error", reject);
        // A stream closed before any response (reset, refused, aborted) never resolves otherwise.
        stream.once("close", () => reject(new Error(`the call to ${call.origin} ended without an answer (code ${stream.rstCode})`)));
        if (call.body.length > 0) stream.end(call.body);
      }),
    close() {
      for (const session of sessions.values()) session.destroy();
      sessions.clear();
    },
  };
}

/** What {@link relay} sends: an {@link UpstreamCall} without its signal, which the relay owns. */
export type RelayCall = Omit<UpstreamCall, "signal">;

/** How a relayed call ended: the service's status (its answer is being streamed back), or why there is none. */
export type RelayOutcome = { readonly status: number } | { readonly failure: "timeout" | "unreachable"; readonly error: unknown };

/**
 * Sends `call` through `pool` and streams the service's answer to `res`: its status, the headers
 * whose names match `passBack` (then `fallback` for any it did not send, and `cache-control:
 * no-store`), and its body. The call is abandoned after `timeoutMs` or as soon as the caller goes
 * away. On a failure nothing is written: the caller answers it in its own protocol's shape
 * (unless `res` is already destroyed, when nobody is listening).
 */
export async function relay(
  pool: UpstreamPool,
  res: ServerResponse,
  call: RelayCall,
  options: { readonly timeoutMs: number; readonly passBack: RegExp; readonly fallback?: Readonly<Record<string, string>> },
): Promise<RelayOutcome> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), options.timeoutMs);
  const onGone = () => abort.abort();
  res.once("close", onGone);
  const done = () => {
    clearTimeout(timer);
    res.off("close", onGone);
  };
  let answer: UpstreamResponse;
  try {
    answer = await pool.request({ ...call, signal: abort.signal });
  } catch (error) {
    done();
    return { failure: abort.signal.aborted ? "timeout" : "unreachable", error };
  }
  const passed: Record<string, string> = {};
  for (const [name, value] of Object.entries(answer.headers)) {
    if (typeof value === "string" && options.passBack.test(name)) passed[name] = value;
  }
  for (const [name, value] of Object.entries(options.fallback ?? {})) passed[name] ??= value;
  passed["cache-control"] = "no-store";
  res.writeHead(answer.status, passed);
  answer.body.on("error", () => res.destroy());
  answer.body.on("end", done);
  answer.body.on("close", done);
  answer.body.pipe(res);
  return { status: answer.status };
}
