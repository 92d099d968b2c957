/**
 * The raw Heartbeat transport writes each beat's ack by hand (wire-messages.ts `ackFrame`), so it
 * must be byte-for-byte what protobuf-es writes for the same ack, for any nonce (negative and
 * beyond 2^53 included), any server time and every state and lock reason — and decode back.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { HeartbeatResponseSchema } from "@lcp/proto/licensing/v1/appliance_service_pb";
import { DeploymentState, LockReason } from "@lcp/proto/licensing/v1/types_pb";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { frame } from "@lcp/rpc/grpc-frame";
import { ackFrame } from "../src/heartbeat/wire-messages.js";

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

function expected(nonce: bigint, nowMs: number, state: number, lockReason: number): Buffer {
  const message = create(HeartbeatResponseSchema, {
    kind: { case: "ack", value: { nonce, serverTime: { seconds: BigInt(Math.floor(nowMs / 1000)), nanos: (nowMs % 1000) * 1_000_000 }, state, lockReason } },
  });
  return frame(toBinary(HeartbeatResponseSchema, message));
}

describe("hand-encoded beat ack", () => {
  it("equals protobuf-es' encoding for any nonce, time, state and lock reason", () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.bigInt({ min: INT64_MIN, max: INT64_MAX }), fc.constantFrom(0n, 1n, 127n, 128n, 2n ** 53n - 1n, 2n ** 53n, -1n, INT64_MIN, INT64_MAX)),
        fc.oneof(fc.integer({ min: 0, max: 2 ** 42 }), fc.constantFrom(0, 999, 1000, 1_790_000_000_123)),
        fc.constantFrom(...Object.values(DeploymentState).filter((v): v is number => typeof v === "number")),
        fc.constantFrom(...Object.values(LockReason).filter((v): v is number => typeof v === "number")),
        (nonce, nowMs, state, lockReason) => {
          const ours = ackFrame(nonce, nowMs, state, lockReason);
          expect(ours.toString("hex")).toBe(expected(nonce, nowMs, state, lockReason).toString("hex"));
          const decoded = fromBinary(HeartbeatResponseSchema, ours.subarray(5));
          expect(decoded.kind.case).toBe("ack");
          if (decoded.kind.case === "ack") {
            expect(decoded.kind.value.nonce).toBe(nonce);
            expect(decoded.kind.value.state).toBe(state);
          }
        },
      ),
      { numRuns: 2_000 },
    );
  });
});
