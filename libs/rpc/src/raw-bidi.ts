/**
 * A bidirectional-streaming method served raw on `node:http2` streams (raw-stream.ts), for the
 * fleet's held streams (licensing's Heartbeat, docs/design.md §8): this module reads the gRPC
 * frames (grpc-frame.ts), refuses what connect-node refuses (compressed or oversized messages, an
 * incomplete envelope at the end), hands each message to the app's session one at a time, and ends
 * the call through {@link RawCall}. The app supplies only a subclass of {@link RawBidiCall}: how a
 * message is decoded and handled, and how its answers are encoded.
 *
 * Per held stream there is the one call object (the app's subclass) and its RawCall: no async
 * iterables, no per-stream closures (the stream's listeners are shared functions that find their
 * call through a symbol on the stream), and a message the session handles synchronously costs no
 * allocation here.
 *
 * Input is handled one message at a time: a message whose handling returns a promise holds the
 * next ones in a short queue, and reading pauses when it fills, so HTTP/2 flow control slows a
 * client that floods us instead of our heap growing.
 */
import * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { DomainError, shuttingDownError } from "./errors.js";
import { GrpcFrameReader } from "./grpc-frame.js";
import type { RawCall, RawStreamHandler } from "./raw-stream.js";

/** Limits of one raw bidi method; each unset one takes its default. */
export interface RawBidiOptions {
  /** Messages read while one is being handled, before reading pauses (flow control takes over). Default 16. */
  readonly maxQueued?: number;
  /**
   * Answers written but not taken by the client. A healthy client reads at once; one that stops
   * reading while answers keep coming is cut off (ResourceExhausted, then the stream reset with
   * ENHANCE_YOUR_CALM) rather than buffered without end. Default 256 KiB.
   */
  readonly maxUnsentBytes?: number;
  /** The message of that ResourceExhausted. Default "the client is not reading its stream". */
  readonly notReadingMessage?: string;
}

/** What the calls of one method share (one object per method, so a call holds one pointer to it). */
interface Method {
  readonly live: Set<RawBidiCall>;
  readonly maxQueued: number;
  readonly maxUnsentBytes: number;
  readonly notReadingMessage: string;
}

const kCall = Symbol("lcp.rawBidiCall");
const kStart = Symbol("lcp.rawBidiStart");
type TaggedStream = http2.ServerHttp2Stream & { [kCall]?: RawBidiCall };

// Shared listeners (one set for all streams): `this` is the stream, which carries its call.
function onData(this: TaggedStream, chunk: Buffer): void {
  this[kCall]?.read(chunk);
}
function onEnd(this: TaggedStream): void {
  this[kCall]?.onInputEnd();
}
function onClose(this: TaggedStream): void {
  this[kCall]?.onStreamClose();
}

/**
 * One held stream of a raw bidi method: frames in, frames out, the app's session between. The app
 * subclasses it (its constructor builds the session), answers with {@link write} and ends with
 * {@link finish}.
 */
export abstract class RawBidiCall extends GrpcFrameReader {
  private stream!: TaggedStream;
  private method!: Method;
  private queue: Uint8Array[] | null = null;
  private busy = false;
  private inputEnded = false;

  constructor(
    /** The admitted call: its principal, request id, and the way its status goes out. */
    protected readonly call: RawCall,
  ) {
    super();
  }

  /**
   * Handles one request message (`bytes` is valid only during this call). A returned promise
   * holds the next messages until it settles; a throw or a rejection ends the call with that error.
   */
  protected abstract handleMessage(bytes: Uint8Array): Promise<void> | undefined;

  /** The call is over (ended, canceled or drained): release the session. Called once. */
  protected abstract dispose(): void;

  /** Takes over the admitted stream (createRawBidiMethod, once the subclass is built). */
  [kStart](stream: TaggedStream, method: Method): void {
    this.stream = stream;
    this.method = method;
    method.live.add(this);
    stream[kCall] = this;
    stream.on("data", onData);
    stream.on("end", onEnd);
    stream.on("close", onClose);
    this.call.open();
    // An empty request (headers, then END_STREAM) has already emitted its `end` while the call was
    // being admitted: node ends a request with no buffered data at once, listener or not.
    if (stream.readableEnded) this.onInputEnd();
  }

  // ------------------------------------------------------------ input

  /** The frame header's verdict; a refusal ends the call (the codes connect-node gives). */
  protected acceptFrame(flags: number, size: number): boolean {
    if (size > this.call.maxMessageBytes) {
      this.finish(new ConnectError(`message size ${size} is larger than configured readMaxBytes ${this.call.maxMessageBytes}`, Code.ResourceExhausted));
      return false;
    }
    if (flags === 0) return true;
    // We announce grpc-accept-encoding: identity, and compressed requests never reach this path.
    this.finish(
      flags === 1
        ? new ConnectError("received compressed envelope, but do not know how to decompress", Code.Internal)
        : new ConnectError(`protocol error: invalid frame flags ${flags}`, Code.InvalidArgument),
    );
    return false;
  }

  protected onFrame(bytes: Uint8Array): void {
    if (this.busy) {
      (this.queue ??= []).push(bytes);
      if (this.queue.length >= this.method.maxQueued) this.stream.pause();
      return;
    }
    this.handle(bytes);
  }

  private handle(bytes: Uint8Array): void {
    let pending: Promise<void> | undefined;
    try {
      pending = this.call.span ? this.call.inSpan(() => this.handleMessage(bytes)) : this.handleMessage(bytes);
    } catch (err) {
      this.finish(err);
      return;
    }
    if (pending !== undefined) {
      this.busy = true;
      pending.then(
        () => this.next(),
        (err: unknown) => this.finish(err),
      );
    }
  }

  /** A message that needed I/O is done: handle what queued up meanwhile. */
  private next(): void {
    this.busy = false;
    while (this.queue !== null && !this.busy && !this.stopped) {
      const bytes = this.queue.shift();
      if (this.queue.length === 0) this.queue = null;
      if (bytes !== undefined) this.handle(bytes);
    }
    if (this.stopped || this.busy) return;
    if (this.stream.isPaused()) this.stream.resume();
    if (this.inputEnded) this.endOfInput();
  }

  /** The client half-closed (the stream's `end`). */
  onInputEnd(): void {
    this.inputEnded = true;
    if (!this.busy && this.queue === null) this.endOfInput();
  }

  /** The client half-closed and every message is handled: nothing more to answer. */
  private endOfInput(): void {
    if (this.midFrame) this.finish(new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument));
    else this.finish();
  }

  /** The stream closed under us (reset, connection lost): the client went away. */
  onStreamClose(): void {
    if (this.stopped) return;
    this.cleanup();
    this.call.cancel();
  }

  // ------------------------------------------------------------ output

  /** Writes one whole frame (header included); a client that stops reading is cut off. */
  protected write(frame: Buffer): void {
    if (this.stopped) return;
    this.call.write(frame);
    if (this.call.unsentBytes > this.method.maxUnsentBytes) {
      this.finish(new DomainError("RESOURCE_EXHAUSTED", this.method.notReadingMessage));
      // It would not read the status either.
      if (!this.stream.closed) this.stream.close(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    }
  }

  /** Ends the call with OK or `error` (after everything written before), once. */
  finish(error?: unknown): void {
    if (this.stopped) return;
    this.cleanup();
    this.call.end(error);
  }

  private cleanup(): void {
    this.stopped = true;
    this.dropPartial();
    this.queue = null;
    this.method.live.delete(this);
    this.dispose();
  }
}

/**
 * The handler of a raw bidi method for `createServer({ rawStreams: { [path]: … } })`: `open`
 * builds the call's session for an admitted call (a throw answers the call with that error), and
 * the server's shutdown ends every held stream Unavailable, so clients reconnect elsewhere.
 */
export function createRawBidiMethod(open: (call: RawCall) => RawBidiCall, options: RawBidiOptions = {}): RawStreamHandler {
  const method: Method = {
    live: new Set(),
    maxQueued: options.maxQueued ?? 16,
    maxUnsentBytes: options.maxUnsentBytes ?? 256 * 1024,
    notReadingMessage: options.notReadingMessage ?? "the client is not reading its stream",
  };
  return {
    serve(stream, _headers, call) {
      let bidi: RawBidiCall;
      try {
        bidi = open(call);
      } catch (err) {
        call.end(err);
        return;
      }
      bidi[kStart](stream, method);
    },
    drain() {
      for (const c of [...method.live]) c.finish(shuttingDownError());
    },
  };
}
