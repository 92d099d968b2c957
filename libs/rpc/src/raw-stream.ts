/**
 * Raw gRPC streams: a method whose traffic is the fleet's (licensing's Heartbeat, docs/design.md §8)
 * can be served directly on `node:http2` streams, beside the Connect stack on the same listener
 * and port. `createServer({ rawStreams })` admits each such call exactly like the interceptor does
 * (request id, authentication, the policy, `onDenied`) before the handler sees the stream; the
 * handler frames the messages itself and ends the call through {@link RawCall}, which writes the
 * gRPC status (the same trailers and `google.rpc.ErrorInfo` details connect-node writes, from the
 * same `toConnectError` mapping), the call's log line and its metrics.
 *
 * Only plain binary gRPC goes raw (`application/grpc`, `application/grpc+proto`, no message
 * compression); gRPC-Web, the Connect protocol, JSON and compressed requests on the same path are
 * served by the Connect stack as before, so every client keeps working.
 */
import * as http2 from "node:http2";
import { ConnectError } from "@connectrpc/connect";
import { context, ROOT_CONTEXT, trace, type Context, type Span } from "@opentelemetry/api";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import type { Logger } from "pino";
import { toConnectError } from "./errors.js";
import { recordCallEnd, REQUEST_ID_HEADER } from "./interceptors.js";
import type { RpcCallMetrics } from "./metrics.js";
import type { Principal } from "./principal.js";

/**
 * Serves one method's streams raw. `serve` gets only admitted calls and must end each one through
 * `call.end(error?)` (or learn of its cancellation from the stream's `close`, then `call.cancel()`).
 */
export interface RawStreamHandler {
  /**
   * Takes over an admitted stream: read its frames, write responses with `call.write`. Admission
   * is asynchronous and node emits `end` of an empty request at once, so the request may already
   * be over here (`stream.readableEnded`): check it, or the call is never answered.
   */
  serve(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, call: RawCall): void;
  /**
   * The server is shutting down: end every stream (Unavailable, so clients reconnect elsewhere).
   * Called once, before the server waits for its calls to finish.
   */
  drain(): void;
}

/** Whether a request may be served raw: binary gRPC without message compression. */
export function isRawGrpcRequest(headers: http2.IncomingHttpHeaders): boolean {
  const type = headers["content-type"]?.toLowerCase();
  if (type !== "application/grpc" && type !== "application/grpc+proto") return false;
  const encoding = headers["grpc-encoding"];
  return encoding === undefined || encoding === "identity";
}

/** What every raw call of one server shares (one object per server, not per call). */
export interface RawCallGate {
  /** The app serving, named on each call's trace span. */
  readonly app: string;
  readonly log: Logger;
  readonly metrics?: RpcCallMetrics | undefined;
  readonly transientError?: ((err: unknown) => boolean) | undefined;
  /** Largest accepted request message (the server's `maxReceiveMessageBytes`). */
  readonly maxMessageBytes: number;
}

// Sent before the first message. No grpc-encoding: responses are never compressed, and
// grpc-accept-encoding tells clients not to compress theirs (which would leave the raw path).
const RESPONSE_CONTENT_TYPE = "application/grpc+proto";
const OK_STATUS = "0";

/**
 * One admitted raw call: who is calling, its request id, and the way to end it. A class so that
 * the per-stream state is one small object with methods on the prototype (10,000 held streams).
 */
export class RawCall {
  private responded = false;
  private ended = false;
  private opened = false;
  private traceContext: Context | undefined;

  constructor(
    private readonly gate: RawCallGate,
    private readonly stream: http2.ServerHttp2Stream,
    /** `pkg.Service`. */
    readonly service: string,
    readonly method: string,
    readonly requestId: string,
    /** The authenticated caller; the policy admitted it for this procedure. */
    readonly principal: Principal,
    /** `performance.now()` when the stream arrived. */
    readonly startedAt: number,
    /** The call's trace span (tracing.ts), when tracing is on; ended with the call. */
    readonly span?: Span,
  ) {}

  /**
   * Runs `fn` with the call's span current (its logs and the changes it makes belong to the call's
   * trace); just runs it when tracing is off.
   */
  inSpan<T>(fn: () => T): T {
    if (this.span === undefined) return fn();
    this.traceContext ??= trace.setSpan(ROOT_CONTEXT, this.span);
    return context.with(this.traceContext, fn);
  }

  /** Largest request message the handler may accept (larger: ResourceExhausted). */
  get maxMessageBytes(): number {
    return this.gate.maxMessageBytes;
  }

  /** Whether the call has ended (status sent or stream gone). */
  get isEnded(): boolean {
    return this.ended;
  }

  /** Counts the stream as open (`rpc` stream gauge) and sends the response headers. */
  open(): void {
    if (this.opened || this.ended) return;
    this.opened = true;
    this.gate.metrics?.streamOpened(this.service, this.method, 1);
    this.respond();
  }

  /** Writes one framed message; false when the stream's write buffer is full. */
  write(frame: Uint8Array): boolean {
    if (this.ended) return false;
    if (!this.responded) this.respond();
    return this.stream.write(frame);
  }

  /** Bytes written but not yet sent to the client (a box that stops reading grows this). */
  get unsentBytes(): number {
    return this.stream.writableLength;
  }

  /**
   * Ends the call: status OK, or `err` mapped like any handler error (a DomainError keeps its
   * code and ErrorInfo reason; anything else is logged and answered Internal or, when transient,
   * Unavailable). A request the client is still sending is reset right after the status, so an
   * oversized or refused message is never read to its end. Idempotent.
   */
  end(err?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    let error: ConnectError | undefined;
    if (err !== undefined) {
      error = toConnectError(err, this.gate.log, this.requestId, this.gate.transientError);
      error.metadata.set(REQUEST_ID_HEADER, this.requestId);
    }
    this.record(error, false);
    const stream = this.stream;
    if (stream.destroyed || stream.closed) return;
    const status = statusHeaders(error);
    try {
      if (!this.responded) {
        // Trailers-only: the status travels in the one HEADERS frame, as gRPC allows.
        this.responded = true;
        stream.respond({ ":status": 200, "content-type": RESPONSE_CONTENT_TYPE, [REQUEST_ID_HEADER]: this.requestId, ...status }, { endStream: true });
        setImmediate(resetUnread, stream);
      } else {
        stream.once("wantTrailers", () => {
          if (stream.destroyed) return;
          stream.sendTrailers(status);
          // Only once the status is on its way: a reset before it would reach the client as Canceled.
          setImmediate(resetUnread, stream);
        });
        stream.end();
      }
    } catch (e) {
      // The stream went away between the check and the write: nothing left to tell.
      this.gate.log.debug({ err: e, requestId: this.requestId }, "raw stream gone before its status");
    }
  }

  /** The client went away (reset, connection lost) before the call ended: log it as canceled. */
  cancel(): void {
    if (this.ended) return;
    this.ended = true;
    this.record(undefined, true);
  }

  private respond(): void {
    if (this.responded || this.stream.destroyed || this.stream.closed) return;
    this.responded = true;
    this.stream.respond(
      { ":status": 200, "content-type": RESPONSE_CONTENT_TYPE, "grpc-accept-encoding": "identity", [REQUEST_ID_HEADER]: this.requestId },
      { waitForTrailers: true },
    );
  }

  private record(error: ConnectError | undefined, canceled: boolean): void {
    if (this.opened) this.gate.metrics?.streamOpened(this.service, this.method, -1);
    recordCallEnd(this.gate.log, this.gate.metrics, {
      service: this.service,
      method: this.method,
      startedAt: this.startedAt,
      principal: this.principal,
      requestId: this.requestId,
      error,
      canceled,
      span: this.span,
    });
  }
}

/** `grpc-status`, `grpc-message` and `grpc-status-details-bin` exactly as connect-node writes them. */
function statusHeaders(error: ConnectError | undefined): http2.OutgoingHttpHeaders {
  if (!error) return { "grpc-status": OK_STATUS };
  const out: http2.OutgoingHttpHeaders = {};
  setTrailerStatus(new Headers(), error).forEach((value, key) => {
    out[key] = value;
  });
  return out;
}

// CANCEL rather than NO_ERROR: node keeps a NO_ERROR-closed stream alive until its unread input
// is consumed (the same reason server.ts resets refused Connect calls).
function resetUnread(stream: http2.ServerHttp2Stream): void {
  if (!stream.closed && !stream.readableEnded) {
    stream.close(http2.constants.NGHTTP2_CANCEL);
    stream.resume();
  }
}
