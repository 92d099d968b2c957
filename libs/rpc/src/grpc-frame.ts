/**
 * gRPC's message framing (the "length-prefixed message" of the gRPC over HTTP/2 spec): a flags
 * byte (bit 0 = compressed) and the message length, big-endian, before each message. One
 * implementation for the raw bidi method (raw-bidi.ts), the hand-encoded messages that write their
 * own frame header, the tests and the benches' load generators. Importable alone as
 * `@lcp/rpc/grpc-frame`, without the server stack.
 *
 * Hand-written rather than `@connectrpc/connect/protocol`'s envelope helpers: its reader is a web
 * `ReadableStream` / async iterable (a promise and closures per message and per stream, which the
 * held-stream hot path exists to avoid), and `encodeEnvelope` allocates a `DataView` beside each
 * frame and cannot write a header into a buffer the message is already encoded in.
 */

/** Bytes before each message: a flags byte (bit 0 = compressed) and the length, big-endian. */
export const FRAME_HEADER_BYTES = 5;

/** Writes an uncompressed frame header for a `length`-byte message at the start of `buf`. */
export function writeFrameHeader(buf: Buffer, length: number): void {
  buf[0] = 0;
  buf.writeUInt32BE(length, 1);
}

/** A message in its gRPC frame (uncompressed). */
export function frame(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  writeFrameHeader(out, payload.length);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

/**
 * Splits a byte stream into gRPC frames, chunk by chunk: frames whole in a chunk are handed on as
 * views of it (no copy); a frame spread over chunks is gathered into one buffer sized once its
 * header is known. A subclass decides on each header (before a byte of its message is read) and
 * receives each message. Per reader this is two fields and a flag; nothing is allocated per
 * message that is whole in its chunk.
 */
export abstract class GrpcFrameReader {
  /** An incomplete frame: 5 bytes until its header is complete, then the whole frame. */
  private partial: Buffer | null = null;
  private filled = 0;
  /** No more input is read once set (a refused header sets it; subclasses set it when they end). */
  protected stopped = false;

  /**
   * The verdict on a frame header (flags byte, message length); false refuses it and stops the
   * reader for good (the subclass has answered the refusal).
   */
  protected abstract acceptFrame(flags: number, size: number): boolean;

  /** One whole message; a view valid until the next `read` unless the frame spanned chunks. */
  protected abstract onFrame(message: Uint8Array): void;

  /** Whether a frame has begun and not ended (at the end of input: an incomplete envelope). */
  protected get midFrame(): boolean {
    return this.partial !== null;
  }

  /** Feeds the next chunk of the byte stream. */
  read(chunk: Buffer): void {
    if (this.stopped) return;
    let off = this.partial === null ? 0 : this.fill(chunk);
    if (this.partial !== null || this.stopped) return;
    const length = chunk.length;
    while (length - off >= FRAME_HEADER_BYTES) {
      const size = chunk.readUInt32BE(off + 1);
      // Checked on the header alone: an oversized message is refused before a byte of it is read.
      if (!this.accept(chunk[off]!, size)) return;
      const end = off + FRAME_HEADER_BYTES + size;
      if (end > length) break;
      this.onFrame(chunk.subarray(off + FRAME_HEADER_BYTES, end));
      if (this.stopped) return;
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

  /** Forgets an incomplete frame (the reader is done with). */
  protected dropPartial(): void {
    this.partial = null;
    this.filled = 0;
  }

  private accept(flags: number, size: number): boolean {
    if (this.acceptFrame(flags, size)) return true;
    this.stopped = true;
    return false;
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
      if (!this.accept(partial[0]!, size)) return used;
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
      this.onFrame(partial.subarray(FRAME_HEADER_BYTES));
    }
    return used;
  }
}
