/**
 * The Heartbeat messages of the raw transport (raw-heartbeat.ts), read and written by hand where
 * it pays: the ack of a beat, the one message sent once per beat per box, is written straight
 * into its gRPC frame (libs/rpc grpc-frame.ts writes the header) instead of through `create` +
 * `toBinary` (a measurable share of a beat's cost), and a beat's nonce is read in place.
 * heartbeat-ack-encoding-matches-protobuf-es.test.ts and heartbeat-beat-decoding-matches-protobuf-es.test.ts
 * prove both agree with protobuf-es.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { HeartbeatResponseSchema } from "@lcp/proto/licensing/v1/appliance_service_pb";
import { frame, FRAME_HEADER_BYTES, writeFrameHeader } from "@lcp/rpc/grpc-frame";
import type { HeartbeatOut } from "./context.js";

/** Any response message (directives: rare, so the general encoder is fine) in its frame. */
export function responseFrame(message: HeartbeatOut): Buffer {
  return frame(toBinary(HeartbeatResponseSchema, create(HeartbeatResponseSchema, message)));
}

const TWO_POW_53 = 2 ** 53;

/**
 * The frame of `HeartbeatResponse { ack: BeatAck { nonce, server_time, state, lock_reason } }`.
 * proto3 rules: zero scalars are omitted, the present Timestamp is written even when empty; an
 * int64 is a varint of its two's complement (10 bytes when negative). Every length here is below
 * 128, so each fits one byte.
 */
export function ackFrame(nonce: bigint, nowMs: number, state: number, lockReason: number): Buffer {
  const buf = Buffer.allocUnsafe(64);
  const seconds = Math.floor(nowMs / 1000);
  const nanos = (nowMs - seconds * 1000) * 1_000_000;
  // Layout: [frame header 5][0x0A len][BeatAck: nonce? (0x12 len Timestamp) state? lock?]
  let p = FRAME_HEADER_BYTES + 2;
  if (nonce !== 0n) {
    buf[p++] = 0x08;
    p = nonce > 0n && nonce < TWO_POW_53 ? putVarint(buf, p, Number(nonce)) : putVarint64(buf, p, nonce);
  }
  buf[p++] = 0x12;
  const tsLenAt = p++;
  if (seconds !== 0) {
    buf[p++] = 0x08;
    p = seconds > 0 ? putVarint(buf, p, seconds) : putVarint64(buf, p, BigInt(seconds));
  }
  if (nanos !== 0) {
    buf[p++] = 0x10;
    p = nanos > 0 ? putVarint(buf, p, nanos) : putVarint64(buf, p, BigInt(nanos));
  }
  buf[tsLenAt] = p - tsLenAt - 1;
  if (state !== 0) {
    buf[p++] = 0x18;
    p = putVarint(buf, p, state);
  }
  if (lockReason !== 0) {
    buf[p++] = 0x20;
    p = putVarint(buf, p, lockReason);
  }
  const messageLength = p - FRAME_HEADER_BYTES;
  writeFrameHeader(buf, messageLength);
  buf[FRAME_HEADER_BYTES] = 0x0a;
  buf[FRAME_HEADER_BYTES + 1] = messageLength - 2;
  return buf.subarray(0, p);
}

/** A non-negative integer below 2^53 as a varint. */
function putVarint(buf: Buffer, p: number, v: number): number {
  while (v > 0x7f) {
    // `% 128` rather than `& 0x7f`: exact for values beyond 32 bits.
    buf[p++] = (v % 128) | 0x80;
    v = Math.floor(v / 128);
  }
  buf[p++] = v;
  return p;
}

/** Any int64 as a varint of its 64-bit two's complement. */
function putVarint64(buf: Buffer, p: number, v: bigint): number {
  let u = BigInt.asUintN(64, v);
  while (u > 0x7fn) {
    buf[p++] = Number(u & 0x7fn) | 0x80;
    u >>= 7n;
  }
  buf[p++] = Number(u);
  return p;
}

/**
 * The nonce of a HeartbeatRequest that is a beat laid out as protobuf encoders write it
 * (`beat { box_time { seconds, nanos }, nonce }`, each part optional, in field order), read
 * without building the message; undefined for anything else, which the caller decodes with
 * `fromBinary` (so every other layout, and every malformed input, gets protobuf-es' answer).
 * heartbeat-beat-decoding-matches-protobuf-es.test.ts proves it agrees with `fromBinary`.
 */
export function beatNonce(bytes: Uint8Array): bigint | undefined {
  const length = bytes.length;
  // kind.beat = field 2, length-delimited, the only field: [0x12][len][beat]
  if (length < 2 || bytes[0] !== 0x12 || bytes[1]! >= 0x80 || bytes[1]! !== length - 2) return undefined;
  let p = 2;
  if (p < length && bytes[p] === 0x0a) {
    // box_time (field 1): a Timestamp of varints seconds (1) and nanos (2), skipped but checked.
    const tsLength = bytes[p + 1];
    if (tsLength === undefined || tsLength >= 0x80) return undefined;
    const end = p + 2 + tsLength;
    if (end > length) return undefined;
    p += 2;
    if (p < end && bytes[p] === 0x08) p = skipVarint(bytes, p + 1, end);
    if (p >= 0 && p < end && bytes[p] === 0x10) p = skipVarint(bytes, p + 1, end);
    if (p !== end) return undefined;
  }
  if (p === length) return 0n;
  if (bytes[p] !== 0x10) return undefined;
  // nonce (field 2): an int64 varint, at most 10 bytes, the last field.
  let value = 0n;
  let shift = 0n;
  for (let i = p + 1; i < length && i <= p + 10; i++) {
    const b = bytes[i]!;
    value |= BigInt(b & 0x7f) << shift;
    shift += 7n;
    if ((b & 0x80) === 0) return i === length - 1 ? BigInt.asIntN(64, value) : undefined;
  }
  return undefined;
}

/** The position after a varint starting at `p` (at most 10 bytes, ending before `end`), or -1. */
function skipVarint(bytes: Uint8Array, p: number, end: number): number {
  for (let i = p; i < end && i < p + 10; i++) if ((bytes[i]! & 0x80) === 0) return i + 1;
  return -1;
}
