/**
 * ApplianceService.Heartbeat over plain gRPC, served directly on the `node:http2` stream — the
 * fleet's hot path (docs/design.md §8, README "Heartbeat transport"). libs/rpc admits the call
 * (peer certificate → appliance principal, licensing's checkAppliance with its revoked serials,
 * the policy, onDenied), reads the frames and ends the call (raw-bidi.ts); this file is only the
 * adapter between that generic raw bidi method and the transport-free session the Connect path
 * uses too (session.ts): a request decoded (a beat's nonce read in place, wire-messages.ts), the
 * answers encoded (acks by hand).
 */
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { DerivedState } from "@lcp/domain";
import { HeartbeatRequestSchema, type Beat, type HeartbeatRequest } from "@lcp/proto/licensing/v1/appliance_service_pb";
import { createRawBidiMethod, lockReasonToProto, RawBidiCall, stateToProto, type AppliancePrincipal, type RawCall, type RawStreamHandler } from "@lcp/rpc";
import { ackFrame, beatNonce, responseFrame } from "./wire-messages.js";
import type { HeartbeatContext, HeartbeatOut, HeartbeatOutlet } from "./context.js";
import { HeartbeatStream, requireAppliance } from "./session.js";

/** The one path served raw (gRPC binary requests only; libs/rpc sends the rest to Connect). */
export const HEARTBEAT_PATH = "/licensing.v1.ApplianceService/Heartbeat";

/** One held Heartbeat stream: the generic raw call with the session behind it. */
class HeartbeatCall extends RawBidiCall implements HeartbeatOutlet {
  private readonly session: HeartbeatStream;

  constructor(call: RawCall, principal: AppliancePrincipal, ctx: HeartbeatContext) {
    super(call);
    this.session = new HeartbeatStream(ctx, principal, call.requestId, this);
  }

  protected handleMessage(bytes: Uint8Array): Promise<void> | undefined {
    let message: Pick<HeartbeatRequest, "kind">;
    try {
      // The beat, once a second per box, is read without building the message.
      const nonce = beatNonce(bytes);
      message = nonce !== undefined ? { kind: { case: "beat", value: { nonce } as Beat } } : fromBinary(HeartbeatRequestSchema, bytes);
    } catch (err) {
      // As connect-node answers an undecodable message.
      throw new ConnectError(`parse binary: ${err instanceof Error ? err.message : String(err)}`, Code.Internal);
    }
    return this.session.onMessage(message);
  }

  protected dispose(): void {
    this.session.dispose();
  }

  push(message: HeartbeatOut): void {
    if (!this.stopped) this.write(responseFrame(message));
  }

  ack(nonce: bigint, nowMs: number, derived: DerivedState): void {
    if (!this.stopped) this.write(ackFrame(nonce, nowMs, stateToProto(derived.state), lockReasonToProto(derived.lockReason)));
  }

  fail(error: unknown): void {
    this.finish(error);
  }

  close(): void {
    this.finish();
  }
}

/** The raw Heartbeat handler for `createServer({ rawStreams: { [HEARTBEAT_PATH]: … } })`. */
export function createGrpcHeartbeatHandler(ctx: HeartbeatContext): RawStreamHandler {
  return createRawBidiMethod((call) => new HeartbeatCall(call, requireAppliance(call.principal), ctx), {
    notReadingMessage: "the appliance is not reading its heartbeat stream",
  });
}
