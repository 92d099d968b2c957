/**
 * A peer service's error, as our own caller should see it. One rule for every place one service
 * maps another's answer (licensing → signing-keys, …): a permanent refusal keeps its Connect
 * code, message and ErrorInfo reason, because retrying the same request can never succeed and a
 * client told Unavailable would retry it for ever; anything else — the peer unreachable, failing,
 * overloaded, or refusing *us* (PermissionDenied, Unauthenticated: our misconfiguration, never the
 * caller's fault) — is logged and becomes Unavailable, which says "retry later".
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema } from "@lcp/proto/google/rpc/error_details_pb";
import type { Logger } from "pino";

/**
 * The codes that describe the request or the state of the system, not the health of the peer:
 * retrying the same call unchanged cannot succeed (google.rpc.Code guidance).
 */
export const PERMANENT_CODES: ReadonlySet<Code> = new Set([
  Code.InvalidArgument,
  Code.FailedPrecondition,
  Code.OutOfRange,
  Code.AlreadyExists,
  Code.NotFound,
]);

/** Options of {@link fromPeerError}. */
export interface PeerErrorOptions {
  log: Logger;
  /** The peer's name, for the log (`signing-keys`). */
  peer: string;
  /** The RPC that failed, for the log (`Sign`). */
  operation: string;
  /** What the caller reads when the peer failed (Unavailable). */
  unavailableMessage: string;
}

/**
 * Maps an error from a call to a peer service (see the module comment). The result is a
 * ConnectError, which the server's error interceptor passes through unchanged.
 */
export function fromPeerError(err: unknown, options: PeerErrorOptions): ConnectError {
  const error = ConnectError.from(err);
  if (PERMANENT_CODES.has(error.code)) {
    const info = error.findDetails(ErrorInfoSchema)[0];
    return new ConnectError(
      error.rawMessage,
      error.code,
      undefined,
      info ? [{ desc: ErrorInfoSchema, value: { reason: info.reason, domain: info.domain, metadata: { ...info.metadata } } }] : [],
    );
  }
  options.log.error({ err: error, peer: options.peer, operation: options.operation, code: Code[error.code] }, `${options.peer} call failed`);
  return new ConnectError(options.unavailableMessage, Code.Unavailable);
}
