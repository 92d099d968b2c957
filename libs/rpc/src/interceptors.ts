import { randomUUID } from "node:crypto";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { context, type Span } from "@opentelemetry/api";
import type { Logger } from "pino";
import { peerKey, type Authenticator, type PeerInfo } from "./authn.js";
import { toConnectError } from "./errors.js";
import type { RpcCallMetrics } from "./metrics.js";
import { authorize, POLICY, procedureOf, type Rule } from "./policy.js";
import { ANONYMOUS, principalId, principalKey, requestIdKey, type Principal } from "./principal.js";
import { contextWith, endRpcSpan, idsOf, iterateIn, startServerSpan } from "./tracing.js";

/** A refused call, handed to `onDenied` so the app can audit it (`authz.denied`). */
export interface DeniedEvent {
  /** Who was refused (anonymous with a reason when credentials were missing or invalid). */
  readonly principal: Principal;
  /** `"pkg.Service/Method"`. */
  readonly procedure: string;
  readonly code: "unauthenticated" | "permission_denied";
  readonly reason: string;
  /** The request id of the call (of a summary: of the last repeat). */
  readonly requestId: string;
  /**
   * Set on a summary (`createServer`'s `deniedAuditWindowMs`): this refusal came again, this many
   * times, after the one already handed over in full.
   */
  readonly repeated?: DeniedRepeats;
}

/** The repeats of one refusal within a window (libs/rpc denial-audit.ts). */
export interface DeniedRepeats {
  readonly count: number;
  readonly firstAt: Date;
  readonly lastAt: Date;
  /** Counted past the cap on kinds: by RPC and code alone, the callers or reasons varied (the log names each). */
  readonly mixed: boolean;
}

/** What the server interceptor chain needs. */
export interface ServerInterceptorOptions {
  /** The app serving (`licensing` …): named on every call's trace span. */
  readonly app: string;
  readonly authenticate: Authenticator;
  readonly logger: Logger;
  /** The policy table; the system `POLICY` unless a test passes its own. */
  readonly policy?: Readonly<Record<string, Rule>>;
  /**
   * Called for every refused call, before the caller gets the error. Apps write an audit event
   * to their outbox here; libs/rpc does not know about storage. A failing hook is logged, never
   * turned into a different answer for the caller.
   */
  readonly onDenied?: (event: DeniedEvent) => void | Promise<void>;
  /** Where every call's code, duration and open streams are counted (`createMetrics().rpc`). */
  readonly metrics?: RpcCallMetrics;
  /**
   * Recognises errors that mean "a dependency is down for now" (apps pass persistence's
   * `isConnectionError`), answered Unavailable instead of Internal.
   */
  readonly transientError?: (err: unknown) => boolean;
}

/** The header carrying the request id in both directions. */
export const REQUEST_ID_HEADER = "x-request-id";

// Accept a caller's request id only if it is short and plain, so it cannot forge log lines.
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The caller's request id if it is short and plain (so it cannot forge log lines), else a new one. */
export function requestIdFrom(offered: string | null | undefined): string {
  return offered != null && REQUEST_ID.test(offered) ? offered : newRequestId();
}

/**
 * A fresh request id (a UUID). node's `randomUUID()` returns a rope of ~16 concatenated pieces
 * (~490 bytes of heap) until something flattens it; a held stream keeps its id for hours, so it
 * is copied into one flat string (~60 bytes) here, once.
 */
function newRequestId(): string {
  return randomUUID().toLowerCase();
}

/** What admitting a call needs: the authenticator, the policy and the refusal hook. */
export interface AdmitOptions {
  readonly authenticate: Authenticator;
  readonly logger: Logger;
  readonly policy?: Readonly<Record<string, Rule>>;
  readonly onDenied?: (event: DeniedEvent) => void | Promise<void>;
}

/**
 * Authentication then authorisation of one call, shared by the interceptor and the raw stream
 * path (server.ts `rawStreams`) so both admit exactly the same callers. A refusal is returned, not
 * thrown, with the principal, because the call's log line names who was refused; `onDenied` has
 * been told by then. Throws only when authentication itself cannot answer (Unavailable).
 */
export async function admitCall(
  options: AdmitOptions,
  peer: PeerInfo | undefined,
  header: Headers,
  procedure: string,
  requestId: string,
): Promise<{ principal: Principal; refused?: ConnectError }> {
  const principal = await options.authenticate(peer, header);
  const verdict = authorize(principal, procedure, options.policy ?? POLICY);
  if (verdict.ok) return { principal };
  if (options.onDenied) {
    try {
      await options.onDenied({ principal, procedure, code: verdict.code, reason: verdict.reason, requestId });
    } catch (err) {
      options.logger.error({ err, procedure, requestId }, "onDenied hook failed");
    }
  }
  const code = verdict.code === "unauthenticated" ? Code.Unauthenticated : Code.PermissionDenied;
  return { principal, refused: new ConnectError(verdict.reason, code) };
}

/** One ended call, as logged and counted (see {@link recordCallEnd}). */
export interface EndedCall {
  readonly service: string;
  readonly method: string;
  /** `performance.now()` when the call arrived. */
  readonly startedAt: number;
  readonly principal: Principal;
  readonly requestId: string;
  /** The error the caller got, if any. */
  readonly error?: ConnectError | undefined;
  /** The client went away (or the deadline passed) before the call ended. */
  readonly canceled?: boolean;
  /** The call's trace span (tracing.ts), ended here with the call's status. */
  readonly span?: Span | undefined;
}

/**
 * Writes the one structured log line of a call and its call metric, and ends its trace span: the
 * interceptor's and the raw stream path's, so both look the same on dashboards, in logs and traces.
 * The line names the call's span itself: a stream may end outside the span's context.
 */
export function recordCallEnd(log: Logger, metrics: RpcCallMetrics | undefined, call: EndedCall): void {
  const { error } = call;
  const code = error ? codeName(error.code) : call.canceled ? "canceled" : "ok";
  const seconds = (performance.now() - call.startedAt) / 1000;
  const line = {
    procedure: `${call.service}/${call.method}`,
    code,
    durationMs: Math.round(seconds * 10_000) / 10,
    principal: call.principal.kind,
    principalId: principalId(call.principal),
    requestId: call.requestId,
    ...(error && error.code !== Code.Internal ? { message: error.rawMessage } : {}),
    ...idsOf(call.span?.spanContext()),
  };
  endRpcSpan(call.span, error, "server", call.canceled);
  if (error && isServerFault(error.code)) log.error(line, "rpc");
  else log.info(line, "rpc");
  metrics?.callEnded(call.service, call.method, code, seconds);
}

/**
 * The one server interceptor, in this order: request id → authentication → authorisation →
 * handler → error mapping → one structured log line and the call metrics per call (streams
 * when they end).
 *
 * Authorisation happens before the handler so a handler never runs for a refused caller —
 * also for methods the service does not implement, so probing reveals nothing about them.
 */
export function createServerInterceptor(options: ServerInterceptorOptions): Interceptor {
  const log = options.logger;
  const metrics = options.metrics;

  return (next) => async (req) => {
    const started = performance.now();
    const procedure = procedureOf(req.method);
    const service = req.method.parent.typeName;
    const method = req.method.name;
    const requestId = requestIdFrom(req.header.get(REQUEST_ID_HEADER));
    req.contextValues.set(requestIdKey, requestId);
    let principal: Principal = ANONYMOUS;
    const span = startServerSpan(options.app, service, method, req.header);
    span?.setAttribute("lcp.request_id", requestId);

    const finish = (error: ConnectError | undefined) =>
      recordCallEnd(log, metrics, { service, method, startedAt: started, principal, requestId, error, canceled: req.signal.aborted, span });
    const fail = (err: unknown): ConnectError => {
      const error = toConnectError(err, log, requestId, options.transientError);
      error.metadata.set(REQUEST_ID_HEADER, requestId);
      finish(error);
      return error;
    };

    // Admission and the handler (and whatever they log, call or audit) run with the call's span current.
    if (span) return context.with(contextWith(span), handle);
    return handle();

    async function handle() {
      try {
        const admitted = await admitCall(options, req.contextValues.get(peerKey), req.header, procedure, requestId);
        principal = admitted.principal;
        req.contextValues.set(principalKey, principal);
        if (admitted.refused) throw admitted.refused;
        let res;
        if (req.method.methodKind === "client_streaming") {
          // The request stream is open for as long as the handler runs.
          metrics?.streamOpened(service, method, 1);
          try {
            res = await next(req);
          } finally {
            metrics?.streamOpened(service, method, -1);
          }
        } else {
          res = await next(req);
        }
        res.header.set(REQUEST_ID_HEADER, requestId);
        if (!res.stream) {
          finish(undefined);
          return res;
        }
        const messages = res.message;
        // Streams fail while being iterated, not when `next` returns; wrap the iteration so their
        // errors get the same mapping and their log line is written when they end.
        async function* mapped() {
          let error: ConnectError | undefined;
          // Counted from the first pull to the end, in the generator itself, so an open stream
          // is always paired with its close (a generator never started never ran either).
          metrics?.streamOpened(service, method, 1);
          try {
            // A handler's stream runs when it is pulled, in connect's context: pulled in the span's.
            if (span) yield* iterateIn(contextWith(span), messages);
            else yield* messages;
          } catch (err) {
            error = fail(err);
            throw error;
          } finally {
            metrics?.streamOpened(service, method, -1);
            if (!error) finish(undefined);
          }
        }
        return { ...res, message: mapped() };
      } catch (err) {
        throw fail(err);
      }
    }
  };
}

/** `Code.PermissionDenied` → `"permission_denied"`, as gRPC tooling spells status codes. */
export function codeName(code: Code): string {
  return (Code[code] ?? "unknown").replace(/[a-z](?=[A-Z])/g, "$&_").toLowerCase();
}

function isServerFault(code: Code): boolean {
  return code === Code.Internal || code === Code.Unknown || code === Code.DataLoss;
}
