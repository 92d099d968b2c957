/**
 * What every heartbeat session shares (the licensing context, the hub, the coalesced writer, the
 * batched hello reads, limits and counters) and the seam its answers leave through: the
 * {@link HeartbeatOutlet}, one session behind two transports (Connect and raw gRPC).
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { DerivedState } from "@lcp/domain";
import type { HeartbeatResponseSchema } from "@lcp/proto/licensing/v1/appliance_service_pb";
import { lockReasonToProto, stateToProto } from "@lcp/rpc";
import type { LicensingDeps } from "../deps.js";
import type { CertificateRenewalOutcome } from "./directive-store.js";
import type { HelloReads } from "./hello-reads.js";
import type { LastSeenWriter } from "./last-seen-writer.js";
import type { StreamHub } from "./stream-hub.js";

/** What every session shares. */
export interface HeartbeatContext {
  deps: LicensingDeps;
  hub: StreamHub;
  writer: LastSeenWriter;
  /** The hello's reads, batched per event-loop turn (a reconnect storm's hellos share statements). */
  reads: HelloReads;
  limits: HeartbeatLimits;
  /** Counts for /metrics (beats received, directives pushed); no-ops until metrics are registered. */
  counters: HeartbeatCounters;
}

/** What the stream counts for /metrics. */
export interface HeartbeatCounters {
  beat(): void;
  directivePushed(type: string): void;
  /** A certificate renewal ended: recorded, refused (revoked or moved meanwhile) or failed. */
  certificateRenewal(outcome: CertificateRenewalOutcome | "failed"): void;
}

/** Per-stream limits. */
export interface HeartbeatLimits {
  /** Sustained messages per second a stream may send (default 10). */
  messagesPerSecond: number;
  /** Burst of messages above that (default 20). */
  burst: number;
  /** Certificate renewals one stream may ask for (default 2). */
  certificateRenewals: number;
  /** Directive ids one ack may carry (default 100). */
  maxAckIds: number;
}

/** The defaults of {@link HeartbeatLimits}. */
export const DEFAULT_HEARTBEAT_LIMITS: HeartbeatLimits = { messagesPerSecond: 10, burst: 20, certificateRenewals: 2, maxAckIds: 100 };

/** A message on the response stream. */
export type HeartbeatOut = MessageInitShape<typeof HeartbeatResponseSchema>;

/**
 * Where a session's answers go: the transport (Connect's response generator, or the raw gRPC
 * stream). Acks have their own entry because they are the hot path: the raw transport encodes
 * them without building a message.
 */
export interface HeartbeatOutlet {
  /** A directive (or any other response message). */
  push(message: HeartbeatOut): void;
  /** The ack of one beat: its nonce, the server time and the derived state. */
  ack(nonce: bigint, nowMs: number, derived: DerivedState): void;
  /** Ends the stream with `error` after what was queued. */
  fail(error: unknown): void;
  /** Ends the stream (OK) after what was queued. */
  close(): void;
}

/** The ack of a beat as a response message (the Connect path; the raw path encodes it directly). */
export function ackMessage(nonce: bigint, nowMs: number, derived: DerivedState): HeartbeatOut {
  return {
    kind: {
      case: "ack",
      value: { nonce, serverTime: timestampFromMs(nowMs), state: stateToProto(derived.state), lockReason: lockReasonToProto(derived.lockReason) },
    },
  };
}
