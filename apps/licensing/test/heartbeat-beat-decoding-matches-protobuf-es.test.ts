/**
 * The raw Heartbeat transport reads a beat's nonce without decoding the message (wire-messages.ts
 * `beatNonce`), so it must agree with protobuf-es: for any beat protobuf-es encodes it returns the
 * nonce `fromBinary` reads, and for any bytes at all it either declines (the transport then uses
 * `fromBinary`) or returns exactly what `fromBinary` would — never a nonce for bytes protobuf-es
 * would refuse or read as something else.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { HeartbeatRequestSchema } from "@lcp/proto/licensing/v1/appliance_service_pb";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { beatNonce } from "../src/heartbeat/wire-messages.js";

const int64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
const beats = fc.record({
  nonce: fc.oneof(int64, fc.constantFrom(0n, 1n, -1n, 2n ** 53n)),
  boxTime: fc.option(fc.record({ seconds: fc.oneof(int64, fc.constant(0n)), nanos: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }) }), { nil: undefined }),
});

function fromBinaryNonce(bytes: Uint8Array): bigint | "refused" | "not a beat" {
  try {
    const m = fromBinary(HeartbeatRequestSchema, bytes);
    return m.kind.case === "beat" ? m.kind.value.nonce : "not a beat";
  } catch {
    return "refused";
  }
}

describe("beat nonce read without decoding", () => {
  it("reads the nonce of every beat protobuf-es encodes", () => {
    fc.assert(
      fc.property(beats, (beat) => {
        const bytes = toBinary(HeartbeatRequestSchema, create(HeartbeatRequestSchema, { kind: { case: "beat", value: beat } }));
        expect(beatNonce(bytes)).toBe(fromBinaryNonce(bytes));
      }),
      { numRuns: 3_000 },
    );
  });

  it("declines or agrees with fromBinary on arbitrary and mutated bytes", () => {
    const mutated = beats.chain((beat) => {
      const bytes = toBinary(HeartbeatRequestSchema, create(HeartbeatRequestSchema, { kind: { case: "beat", value: beat } }));
      return fc.tuple(fc.nat(bytes.length), fc.integer({ min: 0, max: 255 }), fc.nat(bytes.length)).map(([at, byte, cut]) => {
        const copy = Uint8Array.from(bytes);
        if (at < copy.length) copy[at] = byte;
        return copy.subarray(0, Math.max(cut, 1));
      });
    });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 40 }), mutated), (bytes) => {
        const ours = beatNonce(bytes);
        if (ours !== undefined) expect(fromBinaryNonce(bytes)).toBe(ours);
      }),
      { numRuns: 20_000 },
    );
  });
});
