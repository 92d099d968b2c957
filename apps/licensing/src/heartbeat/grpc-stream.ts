/**
 * ApplianceService.Heartbeat over plain gRPC, served directly on the `node:http2` stream — the
 * fleet's hot path (docs/design.md §8, README "Heartbeat transport"). libs/rpc admits the call first
 * (peer certificate → appliance principal, licensing's checkAppliance with its revoked serials,
 * the policy, onDenied) and hands over the stream; this file reads the 5-byte-framed
 * HeartbeatRequests (a beat's nonce read in place, grpc-wire.ts), feeds them to the same
 * transport-free session as the Connect path (session.ts), and writes the answers as frames, acks
 * encoded by hand (grpc-wire.ts). The status goes out through `RawCall.end`, with the codes and
 * ErrorInfo the Connect path gives.
 *
 * Per held stream there is this one object, the session and the RawCall: no async iterables, no
 * per-stream closures (the stream's listeners are shared functions that find their call through a
 * symbol on the stream), and a beat that changes nothing is handled synchronously.
 *
 * Input is handled one message at a time, like the Connect path: a message that needs I/O (hello,
 * ack, a state change) holds the next ones in a short queue, and reading pauses when it fills, so
 * HTTP/2 flow control slows a box that floods us instead of our heap growing.
 */
import * as http2 from "node:http2";
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { DerivedState } from "@lcp/domain";
import { HeartbeatRequestSchema, type Beat, type HeartbeatRequest } from "@lcp/proto/licensing/v1/appliance_service_pb";
import { DomainError, shuttingDownError, type AppliancePrincipal, type RawCall, type RawStreamHandler } from "@lcp/rpc";
import { lockReasonToProto, stateToProto } from "../mapping.js";
import { ackFrame, beatNonce, FRAME_HEADER_BYTES, responseFrame } from "./grpc-wire.js";
import { HeartbeatStream, requireAppliance, type HeartbeatContext, type HeartbeatOut, type HeartbeatOutlet } from "./session.js";

/** The one path served raw (gRPC binary requests only; libs/rpc sends the rest to Connect). */
export const HEARTBEAT_PATH = "/licensing.v1.ApplianceService/Heartbeat";

/** Messages read while one is being handled, before reading pauses (flow control takes over). */
const MAX_QUEUED = 16;
/**
 * Answers written but not taken by the box. A healthy box reads its acks at once; one that stops
 * reading while directives keep coming is cut off rather than buffered without end.
 */
const MAX_UNSENT_BYTES = 256 * 1024;

const kCall = Symbol("lcp.heartbeatCall");
type TaggedStream = http2.ServerHttp2Stream & { [kCall]?: GrpcHeartbeatCall };

// Shared listeners (one set for all streams): `this` is the stream, which carries its call.
function onData(this: TaggedStream, chunk: Buffer): void {
  this[kCall]?.onData(chunk);
}
function onEnd(this: TaggedStream): void {
  this[kCall]?.onEnd();
}
function onClose(this: TaggedStream): void {
  this[kCall]?.onClose();
}

/** One held Heartbeat stream on the raw transport: framing in, frames out, the session between. */
class GrpcHeartbeatCall implements HeartbeatOutlet {
  private readonly session: HeartbeatStream;
  /** An incomplete frame: 5 bytes until its header is complete, then the whole frame. */
  private partial: Buffer | null = null;
  private filled = 0;
  private queue: Uint8Array[] | null = null;
  private busy = false;
  private inputEnded = false;
  private done = false;

  constructor(
    private readonly stream: TaggedStream,
    private readonly call: RawCall,
    principal: AppliancePrincipal,
    ctx: HeartbeatContext,
    private readonly live: Set<GrpcHeartbeatCall>,
  ) {
    this.session = new HeartbeatStream(ctx, principal, call.requestId, this);
    live.add(this);
    stream[kCall] = this;
    stream.on("data", onData);
    stream.on("end", onEnd);
    stream.on("close", onClose);
    call.open();
    // An empty request (headers, then END_STREAM) has already emitted its `end` while the call was
    // being admitted: node ends a request with no buffered data at once, listener or not.
    if (stream.readableEnded) this.onEnd();
  }

  // ------------------------------------------------------------ input

  onData(chunk: Buffer): void {
    if (this.done) return;
    let off = this.partial === null ? 0 : this.fill(chunk);
    if (this.partial !== null || this.done) return;
    const length = chunk.length;
    while (length - off >= FRAME_HEADER_BYTES) {
      const size = chunk.readUInt32BE(off + 1);
      // Checked on the header alone: an oversized message is refused before a byte of it is read.
      if (!this.acceptable(chunk[off]!, size)) return;
      const end = off + FRAME_HEADER_BYTES + size;
      if (end > length) break;
      this.receive(chunk.subarray(off + FRAME_HEADER_BYTES, end));
      if (this.done) return;
      off = end;
    }
    if (off < length) {
      // A frame continued in later chunks: keep its start, sized to the whole frame once known.
      const rest = length - off;
      const size = rest >= FRAME_HEADER_BYTES ? FRAME_HEADER_BYTES + chunk.readUInt32BE(off + 1) : FRAME_HEADER_BYTES;
      this.partial = Buffer.allocUnsafe(size);
      chunk.copy(this.partial, 0, off);
      this.filled = rest;
    }
  }

  /** Adds the start of `chunk` to the incomplete frame; returns how many bytes it used. */
  private fill(chunk: Buffer): number {
    let partial = this.partial!;
    let used = 0;
    if (this.filled < FRAME_HEADER_BYTES) {
      used = Math.min(FRAME_HEADER_BYTES - this.filled, chunk.length);
      chunk.copy(partial, this.filled, 0, used);
      this.filled += used;
      if (this.filled < FRAME_HEADER_BYTES) return used;
      const size = partial.readUInt32BE(1);
      if (!this.acceptable(partial[0]!, size)) return used;
      const whole = Buffer.allocUnsafe(FRAME_HEADER_BYTES + size);
      partial.copy(whole, 0, 0, FRAME_HEADER_BYTES);
      this.partial = partial = whole;
    }
    const n = Math.min(partial.length - this.filled, chunk.length - used);
    chunk.copy(partial, this.filled, used, used + n);
    this.filled += n;
    used += n;
    if (this.filled === partial.length) {
      this.partial = null;
      this.filled = 0;
      this.receive(partial.subarray(FRAME_HEADER_BYTES));
    }
    return used;
  }

  /** The frame header's verdict; a refusal ends the call (the codes connect-node gives). */
  private acceptable(flags: number, size: number): boolean {
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

  private receive(bytes: Uint8Array): void {
    if (this.busy) {
      (this.queue ??= []).push(bytes);
      if (this.queue.length >= MAX_QUEUED) this.stream.pause();
      return;
    }
    this.handle(bytes);
  }

  private handle(bytes: Uint8Array): void {
    let message: Pick<HeartbeatRequest, "kind">;
    try {
      // The beat, once a second per box, is read without building the message.
      const nonce = beatNonce(bytes);
      message = nonce !== undefined ? { kind: { case: "beat", value: { nonce } as Beat } } : fromBinary(HeartbeatRequestSchema, bytes);
    } catch (err) {
      // As connect-node answers an undecodable message.
      this.finish(new ConnectError(`parse binary: ${err instanceof Error ? err.message : String(err)}`, Code.Internal));
      return;
    }
    let pending: Promise<void> | undefined;
    try {
      pending = this.session.onMessage(message);
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
    while (this.queue !== null && !this.busy && !this.done) {
      const bytes = this.queue.shift();
      if (this.queue.length === 0) this.queue = null;
      if (bytes !== undefined) this.handle(bytes);
    }
    if (this.done || this.busy) return;
    if (this.stream.isPaused()) this.stream.resume();
    if (this.inputEnded) this.endOfInput();
  }

  onEnd(): void {
    this.inputEnded = true;
    if (!this.busy && this.queue === null) this.endOfInput();
  }

  /** The box half-closed and every message is handled: nothing more to answer. */
  private endOfInput(): void {
    if (this.partial !== null) this.finish(new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument));
    else this.finish();
  }

  /** The stream closed under us (reset, connection lost): the box went away. */
  onClose(): void {
    if (this.done) return;
    this.cleanup();
    this.call.cancel();
  }

  // ------------------------------------------------------------ output (HeartbeatOutlet)

  push(message: HeartbeatOut): void {
    if (!this.done) this.write(responseFrame(message));
  }

  ack(nonce: bigint, nowMs: number, derived: DerivedState): void {
    if (!this.done) this.write(ackFrame(nonce, nowMs, stateToProto(derived.state), lockReasonToProto(derived.lockReason)));
  }

  fail(error: unknown): void {
    this.finish(error);
  }

  close(): void {
    this.finish();
  }

  private write(frame: Buffer): void {
    this.call.write(frame);
    if (this.call.unsentBytes > MAX_UNSENT_BYTES) {
      this.finish(new DomainError("RESOURCE_EXHAUSTED", "the appliance is not reading its heartbeat stream"));
      // It would not read the status either.
      if (!this.stream.closed) this.stream.close(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    }
  }

  /** Ends the call with OK or `error` (after everything written before), once. */
  finish(error?: unknown): void {
    if (this.done) return;
    this.cleanup();
    this.call.end(error);
  }

  private cleanup(): void {
    this.done = true;
    this.partial = null;
    this.queue = null;
    this.live.delete(this);
    this.session.dispose();
  }
}

/** The raw Heartbeat handler for `createServer({ rawStreams: { [HEARTBEAT_PATH]: … } })`. */
export function createGrpcHeartbeatHandler(ctx: HeartbeatContext): RawStreamHandler {
  const live = new Set<GrpcHeartbeatCall>();
  return {
    serve(stream, _headers, call) {
      let principal: AppliancePrincipal;
      try {
        principal = requireAppliance(call.principal);
      } catch (err) {
        call.end(err);
        return;
      }
      new GrpcHeartbeatCall(stream, call, principal, ctx, live);
    },
    drain() {
      // Unavailable: the boxes reconnect (to another replica, or to this one restarted).
      for (const c of [...live]) c.finish(shuttingDownError());
    },
  };
}
