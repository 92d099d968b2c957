/**
 * `POST /api/<pkg.Service>/<Method>`: the browser's Connect unary calls, forwarded to the service
 * that owns them with the signed-in admin's bearer token. The console checks the session, CSRF,
 * that the procedure is browser-facing, the codec and the size; the service decides whether this
 * admin may make the call, and its answer (success or error, details included) comes back as sent.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { OutgoingHttpHeaders } from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { endRpcSpan, SERVICE_ATTRIBUTE, startClientSpan, tracingActive } from "@lcp/rpc";
import type { Logger } from "pino";
import type { UpstreamUrls } from "./config.js";
import { passesCsrf, refuseCsrf, refuseUnauthenticated, sessionOf } from "./guards.js";
import { readBody, sendConnectError, type BodyError } from "./http.js";
import { errorFields, type Sessions } from "./sessions.js";
import { relay, type UpstreamPool } from "./upstream.js";

/** The largest request body forwarded. */
export const MAX_API_BODY_BYTES = 1024 * 1024;
/** The longest a forwarded call may take (and the most `connect-timeout-ms` may ask for). */
export const DEFAULT_UPSTREAM_TIMEOUT_MS = 30_000;

/** What the proxy works with. */
export interface ApiContext {
  readonly log: Logger;
  readonly sessions: Sessions;
  readonly publicOrigin: string;
  /** `"pkg.Service/Method"` → owning upstream. */
  readonly routes: ReadonlyMap<string, keyof UpstreamUrls>;
  readonly upstreams: UpstreamUrls;
  readonly pool: UpstreamPool;
  readonly upstreamTimeoutMs: number;
}

const PROCEDURE = /^\/api\/([A-Za-z][A-Za-z0-9_.]{0,199})\/([A-Za-z][A-Za-z0-9_]{0,99})$/;
const CONTENT_TYPES = new Set(["application/proto", "application/json"]);
const ENCODINGS = new Set(["gzip", "br", "identity"]);
// Answer headers passed back to the browser: the codec, the compression, the request id, and
// Connect's unary trailers (`trailer-*`). Nothing else (no cookies, no hop-by-hop headers).
const PASSED_BACK = /^(content-type|content-encoding|content-length|x-request-id|trailer-[a-z0-9-]{1,64})$/;

/** Handles one `/api/...` request (any method; only POST is served). */
export async function forwardApiCall(ctx: ApiContext, req: IncomingMessage, res: ServerResponse, pathname: string): Promise<void> {
  const session = await sessionOf(req, res, ctx.sessions);
  if (!session) {
    closeUnread(req, res);
    refuseUnauthenticated(res);
    return;
  }
  if (!passesCsrf(req, session, ctx.publicOrigin)) {
    closeUnread(req, res);
    refuseCsrf(res);
    return;
  }
  const match = PROCEDURE.exec(pathname);
  const procedure = match ? `${match[1]}/${match[2]}` : undefined;
  const upstream = procedure === undefined ? undefined : ctx.routes.get(procedure);
  if (procedure === undefined || upstream === undefined) {
    closeUnread(req, res);
    sendConnectError(res, 404, "unimplemented", `${procedure ?? "this path"} is not available through the console`);
    return;
  }
  const contentType = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
  if (!CONTENT_TYPES.has(contentType)) {
    closeUnread(req, res);
    sendConnectError(res, 415, "unimplemented", "content-type must be application/proto or application/json (Connect unary)");
    return;
  }
  const version = req.headers["connect-protocol-version"];
  if (version !== undefined && version !== "1") {
    closeUnread(req, res);
    sendConnectError(res, 400, "invalid_argument", "connect-protocol-version must be 1");
    return;
  }
  const encoding = req.headers["content-encoding"]?.trim().toLowerCase();
  if (encoding !== undefined && !ENCODINGS.has(encoding)) {
    closeUnread(req, res);
    sendConnectError(res, 415, "unimplemented", "content-encoding must be gzip, br or identity");
    return;
  }
  const timeoutHeader = req.headers["connect-timeout-ms"];
  const requested = typeof timeoutHeader === "string" && /^\d{1,10}$/.test(timeoutHeader) ? Number(timeoutHeader) : Infinity;
  const timeoutMs = Math.max(1, Math.min(requested, ctx.upstreamTimeoutMs));

  let body: Buffer;
  try {
    body = await readBody(req, MAX_API_BODY_BYTES);
  } catch (err) {
    if ((err as BodyError) === "too_large") {
      res.setHeader("connection", "close");
      sendConnectError(res, 413, "resource_exhausted", `request body exceeds ${MAX_API_BODY_BYTES} bytes`);
    }
    // An aborted body: nobody is listening any more.
    return;
  }

  const fresh = await ctx.sessions.withFreshTokens(session);
  if (!fresh) {
    refuseUnauthenticated(res);
    return;
  }
  const touched = await ctx.sessions.touch(fresh);

  const requestId = randomUUID();
  const headers: OutgoingHttpHeaders = {
    "content-type": req.headers["content-type"]!,
    "connect-protocol-version": "1",
    "connect-timeout-ms": String(timeoutMs),
    authorization: `Bearer ${touched.accessToken}`,
    "x-request-id": requestId,
    "user-agent": "lcp-console",
  };
  if (encoding !== undefined) headers["content-encoding"] = encoding;
  const accept = acceptedEncodings(req.headers["accept-encoding"]);
  if (accept) headers["accept-encoding"] = accept;

  // The forwarded call is a span of its own trace, continued by the service (traceparent sent along).
  const [service, method] = procedure.split("/") as [string, string];
  const traced = tracingActive() ? startClientSpan(service, method, ctx.upstreams[upstream], (key, value) => (headers[key] = value)) : undefined;
  traced?.span.setAttribute(SERVICE_ATTRIBUTE, "console");

  // The service enforces the deadline itself; the extra second catches a service that does not answer at all.
  const outcome = await relay(ctx.pool, res, { origin: ctx.upstreams[upstream], path: `/${procedure}`, headers, body }, {
    timeoutMs: timeoutMs + 1_000,
    passBack: PASSED_BACK,
    fallback: { "x-request-id": requestId },
  });
  if ("failure" in outcome) {
    endRpcSpan(traced?.span, new ConnectError("the service did not answer", outcome.failure === "timeout" ? Code.DeadlineExceeded : Code.Unavailable), "client");
    if (res.destroyed) return;
    if (outcome.failure === "timeout") {
      sendConnectError(res, 504, "deadline_exceeded", `the ${upstream} service did not answer within ${timeoutMs} ms (request id ${requestId})`);
    } else {
      ctx.log.warn({ upstream, procedure, requestId, err: errorFields(outcome.error) }, "service unreachable");
      sendConnectError(res, 503, "unavailable", `the ${upstream} service is unavailable, retry later (request id ${requestId})`);
    }
    return;
  }
  traced?.span.setAttribute("http.response.status_code", outcome.status);
  // The Connect protocol's error is in the body; an HTTP status other than 200 says there is one.
  endRpcSpan(traced?.span, outcome.status === 200 ? undefined : new ConnectError(`HTTP ${outcome.status}`, Code.Unknown), "client");
}

/** The browser's accepted encodings that the services speak too. */
function acceptedEncodings(header: string | undefined): string | undefined {
  if (!header || header.length > 256) return undefined;
  const offered = header.split(",").map((e) => e.split(";")[0]!.trim().toLowerCase());
  const both = ["gzip", "br"].filter((e) => offered.includes(e));
  return both.length > 0 ? both.join(", ") : undefined;
}

/**
 * Refusing before the body was read: the connection is closed after the answer, so an unread
 * body (perhaps large) is never drained into the next request.
 */
function closeUnread(req: IncomingMessage, res: ServerResponse): void {
  if (!req.complete) res.setHeader("connection", "close");
}
