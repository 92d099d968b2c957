import { Code, ConnectError } from "@connectrpc/connect";
import type { DomainCode } from "@lcp/domain";
import type { CsrRefusalCode } from "@lcp/pki";
import { ErrorInfoSchema } from "@lcp/proto/google/rpc/error_details_pb";
import type { OfflineFileRefusalCode, TokenRefusalCode } from "@lcp/tokens";
import type { Logger } from "pino";

/** The ErrorInfo `domain` of every error this control plane raises on purpose. */
export const ERROR_DOMAIN = "lcp";

/**
 * Every code an error raised on purpose may carry: the domain's verdict codes, the token and CSR
 * refusals, and the service-level ones below. A handler cannot throw a code missing from
 * {@link DOMAIN_CODES}: the table is keyed by this union, so a new code without its Connect code
 * does not compile.
 */
export type ErrorCode =
  | DomainCode
  | TokenRefusalCode
  | CsrRefusalCode
  | OfflineFileRefusalCode
  | "REQUEST_KEY_MISMATCH"
  | "CERTIFICATE_NOT_RECOGNISED"
  | "NOT_AIR_GAPPED"
  | "PAGE_TOKEN_INVALID"
  | "ALREADY_ACTIVATED"
  | "LICENSE_SUPERSEDED"
  | "NO_ACTIVE_KEY"
  | "KEY_STATE"
  | "FAILED_PRECONDITION"
  | "WRONG_DEPLOYMENT"
  | "PERMISSION_DENIED"
  | "SWEEP_IN_PROGRESS"
  | "STREAM_REPLACED"
  | "ALREADY_EXISTS"
  | "RESOURCE_EXHAUSTED"
  | "UNAVAILABLE";

/**
 * A refusal that the domain decided on: a string code from a verdict (`LICENSE_REVOKED`) and a
 * message fit for the caller. Handlers throw it (or `fromVerdict`), the server interceptor turns
 * it into the Connect code from `DOMAIN_CODES` with the code as ErrorInfo reason.
 */
export class DomainError extends Error {
  override name = "DomainError";
  constructor(
    /** The domain code (`NOT_FOUND`, `LICENSE_REVOKED` …), sent as ErrorInfo `reason`. */
    readonly code: ErrorCode,
    message: string,
    /** Extra machine-readable facts, sent as ErrorInfo `metadata` (never secrets). */
    readonly metadata: Readonly<Record<string, string>> = {},
  ) {
    super(message);
  }
}

/**
 * Domain code → Connect code: the one table for the whole system (docs/design.md, docs/CONVENTIONS.md
 * "Style"). Keyed by {@link ErrorCode}, so a code without its entry does not compile; a code
 * that still arrives unknown (an untyped string at run time) answers Internal.
 */
export const DOMAIN_CODES: Readonly<Record<ErrorCode, Code>> = {
  // The caller named something that does not exist.
  NOT_FOUND: Code.NotFound,

  // The request itself is malformed; retrying it unchanged can never succeed.
  INVALID_ARGUMENT: Code.InvalidArgument,
  FINGERPRINT_INVALID: Code.InvalidArgument,
  SETTINGS_OUT_OF_RANGE: Code.InvalidArgument,
  REASON_REQUIRED: Code.InvalidArgument,
  VALIDITY_OUT_OF_RANGE: Code.InvalidArgument,
  // Licence/lease token refusals (@lcp/tokens TokenRefusalCode) when the token is a request
  // field, e.g. Activate. An admin *bearer* token refusal is Unauthenticated instead (authn.ts).
  TOKEN_MALFORMED: Code.InvalidArgument,
  TOKEN_WRONG_TYPE: Code.InvalidArgument,
  TOKEN_BAD_ALGORITHM: Code.InvalidArgument,
  TOKEN_BAD_SIGNATURE: Code.InvalidArgument,
  TOKEN_UNKNOWN_KEY: Code.InvalidArgument,
  TOKEN_EXPIRED: Code.InvalidArgument,
  TOKEN_NOT_YET_VALID: Code.InvalidArgument,
  TOKEN_BAD_ISSUER: Code.InvalidArgument,
  TOKEN_BAD_AUDIENCE: Code.InvalidArgument,
  TOKEN_CLAIMS_INVALID: Code.InvalidArgument,
  TOKEN_NO_ROLES: Code.InvalidArgument,
  // CSR refusals (@lcp/pki CsrRefusalCode).
  CSR_MALFORMED: Code.InvalidArgument,
  CSR_WEAK_KEY: Code.InvalidArgument,
  CSR_BAD_SIGNATURE: Code.InvalidArgument,
  CSR_NAME_NOT_ALLOWED: Code.InvalidArgument,
  PAGE_TOKEN_INVALID: Code.InvalidArgument,
  // Air-gapped files (libs/tokens offline-files.ts): what the box wrote is unreadable or forged.
  FILE_MALFORMED: Code.InvalidArgument,
  FILE_WRONG_KIND: Code.InvalidArgument,
  FILE_BAD_SIGNATURE: Code.InvalidArgument,
  FILE_UNTRUSTED_SIGNER: Code.InvalidArgument,
  FILE_EXPIRED: Code.InvalidArgument,
  FILE_CLAIMS_INVALID: Code.InvalidArgument,
  // An activation request signed by another key than its CSR's: no proof of possession.
  REQUEST_KEY_MISMATCH: Code.InvalidArgument,

  // Well-formed, but the system is not in a state that allows it.
  LICENSE_REVOKED: Code.FailedPrecondition,
  LICENSE_EXPIRED: Code.FailedPrecondition,
  LICENSE_SUPERSEDED: Code.FailedPrecondition,
  LICENSE_NOT_YET_VALID: Code.FailedPrecondition,
  FINGERPRINT_MISMATCH: Code.FailedPrecondition,
  SUBSCRIPTION_INVALID: Code.FailedPrecondition,
  NOT_ACTIVATED: Code.FailedPrecondition,
  ALREADY_ACTIVATED: Code.FailedPrecondition,
  ALREADY_REVOKED: Code.FailedPrecondition,
  SAME_FINGERPRINT: Code.FailedPrecondition,
  NO_ACTIVE_KEY: Code.FailedPrecondition,
  KEY_STATE: Code.FailedPrecondition,
  FAILED_PRECONDITION: Code.FailedPrecondition,
  // A file exchange for a deployment that is not AIR_GAPPED.
  NOT_AIR_GAPPED: Code.FailedPrecondition,

  // An appliance acting on a deployment that is not its own.
  WRONG_DEPLOYMENT: Code.PermissionDenied,
  PERMISSION_DENIED: Code.PermissionDenied,
  // A renewal request whose certificate this control plane did not issue to the deployment, or revoked.
  CERTIFICATE_NOT_RECOGNISED: Code.PermissionDenied,

  // Lost a race (optimistic lock, concurrent rotation): retrying the whole operation may work.
  CONFLICT: Code.Aborted,
  SWEEP_IN_PROGRESS: Code.Aborted,
  // A newer heartbeat stream of the same deployment took over (one live stream per deployment).
  STREAM_REPLACED: Code.Aborted,
  ALREADY_EXISTS: Code.AlreadyExists,
  RESOURCE_EXHAUSTED: Code.ResourceExhausted,
  // An outage on our side (a peer service, the database, the issuer's JWKS): retry later.
  UNAVAILABLE: Code.Unavailable,
  TOKEN_KEYS_UNAVAILABLE: Code.Unavailable,
};

/** The Connect code a domain code maps to; Internal for codes missing from `DOMAIN_CODES`. */
export function connectCodeFor(domainCode: string): Code {
  return Object.hasOwn(DOMAIN_CODES, domainCode) ? DOMAIN_CODES[domainCode as ErrorCode] : Code.Internal;
}

/**
 * A domain verdict's refusal as an error to throw: `throw fromVerdict(verdict, "licence revoked")`.
 */
export function fromVerdict(
  verdict: { readonly code: ErrorCode },
  message: string,
  metadata?: Record<string, string>,
): DomainError {
  return new DomainError(verdict.code, message, metadata);
}

/**
 * Turns anything a handler threw into the error the caller sees:
 * - a ConnectError passes through (it was chosen deliberately, or comes from connect itself);
 * - a DomainError becomes its mapped code with a `google.rpc.ErrorInfo` detail
 *   (reason = domain code, domain = "lcp") so clients branch on the reason, not the text;
 * - anything else is a bug or an outage: the cause is logged here and the caller gets Internal
 *   with only the request id, never a stack or the raw message (it may hold SQL, paths, keys).
 */
export function toConnectError(err: unknown, log?: Logger, requestId?: string, isTransient?: (err: unknown) => boolean): ConnectError {
  if (err instanceof ConnectError) return err;
  // A dependency that is down for a moment (the database restarting) is the caller's cue to retry,
  // not a bug: Unavailable, which clients retry for idempotent calls, and a warning, not an error.
  if (!(err instanceof DomainError) && isTransient?.(err)) {
    log?.warn({ err, requestId }, "dependency unavailable");
    const suffix = requestId ? ` (request id ${requestId})` : "";
    return new ConnectError(`temporarily unavailable, retry later${suffix}`, Code.Unavailable, undefined, undefined, err);
  }
  if (err instanceof DomainError) {
    const code = connectCodeFor(err.code);
    if (code === Code.Internal) {
      log?.error({ err, domainCode: err.code, requestId }, "domain code missing from DOMAIN_CODES");
      return internal(requestId, err);
    }
    return new ConnectError(err.message, code, undefined, [
      { desc: ErrorInfoSchema, value: { reason: err.code, domain: ERROR_DOMAIN, metadata: { ...err.metadata } } },
    ]);
  }
  log?.error({ err, requestId }, "unhandled error in handler");
  return internal(requestId, err);
}

function internal(requestId: string | undefined, cause: unknown): ConnectError {
  const suffix = requestId ? ` (request id ${requestId})` : "";
  return new ConnectError(`internal error${suffix}`, Code.Internal, undefined, undefined, cause);
}

/**
 * What a call still open when its server shuts down is ended with: Unavailable, so clients (a
 * box's heartbeat stream above all) reconnect to another replica or to this one restarted.
 */
export function shuttingDownError(): ConnectError {
  return new ConnectError("the server is shutting down; reconnect", Code.Unavailable);
}

/**
 * The ErrorInfo reason (the domain code) carried by an error, for clients and tests:
 * `errorReason(ConnectError.from(e)) === "LICENSE_REVOKED"`. Undefined when there is none.
 */
export function errorReason(err: unknown): string | undefined {
  if (!(err instanceof ConnectError)) return undefined;
  return err.findDetails(ErrorInfoSchema)[0]?.reason;
}
