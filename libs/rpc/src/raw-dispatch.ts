/**
 * The dispatcher `createServer` puts in front of node's HTTP/2 compatibility layer when it has
 * raw methods (raw-stream.ts): a stream on a raw path that is plain binary gRPC is admitted exactly
 * like a Connect call (request id, authentication, the policy, `onDenied`) and handed to its
 * handler; every other stream goes on to the compat layer (and Connect), untouched.
 */
import type * as http2 from "node:http2";
import { context } from "@opentelemetry/api";
import type { Logger } from "pino";
import { peerFromSocket, type Authenticator } from "./authn.js";
import { shuttingDownError } from "./errors.js";
import { admitCall, requestIdFrom, REQUEST_ID_HEADER, type DeniedEvent } from "./interceptors.js";
import type { Rule } from "./policy.js";
import { ANONYMOUS } from "./principal.js";
import { isRawGrpcRequest, RawCall, type RawCallGate, type RawStreamHandler } from "./raw-stream.js";
import { contextWith, startServerSpan } from "./tracing.js";

/** What the dispatcher needs of its server. */
export interface RawDispatchOptions {
  readonly handlers: ReadonlyMap<string, RawStreamHandler>;
  readonly gate: RawCallGate;
  readonly authenticate: Authenticator;
  readonly log: Logger;
  readonly policy?: Readonly<Record<string, Rule>> | undefined;
  readonly onDenied?: ((event: DeniedEvent) => void | Promise<void>) | undefined;
  /** Aborted when the server shuts down: calls admitted after that are answered Unavailable. */
  readonly shutdown: AbortSignal;
  /** Counts the call in flight until its stream's `close` (graceful shutdown waits for it). */
  readonly track: (stream: http2.ServerHttp2Stream) => void;
}

/** Routes raw gRPC streams of `options.handlers`' paths to them; see the module comment. */
export function installRawDispatch(server: http2.Http2SecureServer, options: RawDispatchOptions): void {
  // node's compatibility layer (the request handler) is itself a "stream" listener; put a
  // dispatcher in front of it so raw paths skip the per-request compat objects entirely.
  const compat = server.listeners("stream") as ((...args: unknown[]) => void)[];
  if (compat.length !== 1) throw new Error("createServer: expected node's http2 compat stream listener");
  server.removeAllListeners("stream");
  const ignoreStreamError = (err: Error) => options.log.debug({ err: err.message }, "raw stream error");
  server.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, ...rest: unknown[]) => {
    const handler = options.handlers.get(headers[":path"] ?? "");
    if (handler && isRawGrpcRequest(headers)) serveRaw(handler, stream, headers);
    else compat[0]!.call(server, stream, headers, ...rest);
  });

  function serveRaw(handler: RawStreamHandler, stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    const { gate, log } = options;
    options.track(stream);
    // A reset or a broken connection is that client's business; without a listener it would throw.
    stream.on("error", ignoreStreamError);
    const path = headers[":path"]!;
    const slash = path.lastIndexOf("/");
    const service = path.slice(1, slash);
    const method = path.slice(slash + 1);
    const offered = headers[REQUEST_ID_HEADER];
    const requestId = requestIdFrom(typeof offered === "string" ? offered : undefined);
    const startedAt = performance.now();
    const span = startServerSpan(gate.app, service, method, headers);
    span?.setAttribute("lcp.request_id", requestId);
    const session = stream.session;
    // Not cached for the connection's life: see peerFromSocket (memory per held stream).
    const peer = session ? peerFromSocket(session.socket, session, false) : undefined;
    // Only the credential headers authn reads; a Fetch Headers of everything is not needed.
    const header = new Headers();
    if (typeof headers.authorization === "string") header.set("authorization", headers.authorization);
    const admit = () =>
      admitCall({ authenticate: options.authenticate, logger: log, policy: options.policy, onDenied: options.onDenied }, peer, header, `${service}/${method}`, requestId).then(
        ({ principal, refused }) => {
          const call = new RawCall(gate, stream, service, method, requestId, principal, startedAt, span);
          if (refused) return call.end(refused);
          if (stream.destroyed || stream.closed) return call.cancel();
          if (options.shutdown.aborted) return call.end(shuttingDownError());
          handler.serve(stream, headers, call);
        },
        (err: unknown) => new RawCall(gate, stream, service, method, requestId, ANONYMOUS, startedAt, span).end(err),
      );
    // Admission and the handler's start (its session is built there) run with the call's span current.
    if (span) context.with(contextWith(span), admit);
    else admit();
  }
}
