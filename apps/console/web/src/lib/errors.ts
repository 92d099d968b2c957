/**
 * Errors in words. Every failed call is shown as a title, the server's own message and its
 * ErrorInfo reason (e.g. LICENSE_REVOKED); field refusals (ErrorInfo metadata `field`, the
 * proto field name as the services send it) go to the form field they name. Never a stack,
 * never a bare code number.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema } from "@lcp/proto/google/rpc/error_details_pb";

/** A failed call, ready to show. */
export interface DescribedError {
  /** A short headline in words ("Not allowed"). */
  readonly title: string;
  /** What the server said, or what we can say about a failure that never reached it. */
  readonly message: string;
  /** The ErrorInfo reason (`LICENSE_REVOKED`), when the server gave one. */
  readonly reason: string | null;
  /** What the reason means, for reasons an operator meets. */
  readonly explanation: string | null;
  readonly metadata: Readonly<Record<string, string>>;
  /** Refusals naming a field, by proto field name (`reason`, `heartbeat_interval`). */
  readonly fieldErrors: Readonly<Record<string, string>>;
  /** Set for Connect errors; null for failures outside the protocol. */
  readonly code: Code | null;
  /** A lost race (optimistic concurrency): reload and try again. */
  readonly conflict: boolean;
}

const TITLES: Partial<Record<Code, string>> = {
  [Code.Canceled]: "Cancelled",
  [Code.Unknown]: "Something went wrong",
  [Code.InvalidArgument]: "Check what you entered",
  [Code.DeadlineExceeded]: "The server took too long",
  [Code.NotFound]: "Not found",
  [Code.AlreadyExists]: "Already exists",
  [Code.PermissionDenied]: "Not allowed",
  [Code.ResourceExhausted]: "Too many requests",
  [Code.FailedPrecondition]: "Not possible right now",
  [Code.Aborted]: "Changed by someone else",
  [Code.OutOfRange]: "Out of range",
  [Code.Unimplemented]: "Not available yet",
  [Code.Internal]: "The server failed",
  [Code.Unavailable]: "Service unavailable",
  [Code.DataLoss]: "Data loss",
  [Code.Unauthenticated]: "Signed out",
};

/** What the reasons an operator meets mean, in a sentence. */
const REASONS: Readonly<Record<string, string>> = {
  LICENSE_REVOKED: "The licence is revoked; it can never be used again.",
  LICENSE_EXPIRED: "The licence term has ended.",
  LICENSE_SUPERSEDED: "A newer licence replaced this one.",
  ALREADY_REVOKED: "The licence was already revoked.",
  ALREADY_ACTIVATED: "The licence is already activated.",
  SAME_FINGERPRINT: "The licence is already bound to that fingerprint.",
  NOT_ACTIVATED: "No box has activated this licence yet.",
  SUBSCRIPTION_INVALID: "The subscription is invalid.",
  FINGERPRINT_INVALID: "The fingerprint is not valid.",
  FINGERPRINT_MISMATCH: "Another box is bound to this licence.",
  REASON_REQUIRED: "A reason is required for the audit trail.",
  SETTINGS_OUT_OF_RANGE: "A setting is outside its allowed range.",
  CONFLICT: "Someone else changed this in the meantime. Reload to see the current values, then try again.",
  SWEEP_IN_PROGRESS: "Another sweep is running; wait for it to finish.",
  NO_ACTIVE_KEY: "There is no active signing key to sign with.",
  KEY_STATE: "The signing key is not in a state that allows this.",
  FILE_MALFORMED: "The file is not a readable request file: check that it is the file the box wrote, whole.",
  FILE_WRONG_KIND: "The file is of another kind: pick the request file the box wrote, not a response.",
  FILE_BAD_SIGNATURE: "The file's signature does not verify: it was changed after the box wrote it.",
  FILE_UNTRUSTED_SIGNER: "The file is not signed by a key this control plane trusts.",
  FILE_EXPIRED: "The file is too old to answer: ask the box for a new request.",
  FILE_CLAIMS_INVALID: "A value in the file is missing or out of bounds.",
  REQUEST_KEY_MISMATCH: "The request is not signed by the key of its certificate request: it did not come from the box that holds that key.",
  CERTIFICATE_NOT_RECOGNISED: "The box's certificate in the request is not one this control plane issued to the deployment, or it was revoked.",
  NOT_AIR_GAPPED: "The deployment is online: switch it to air-gapped on its page before answering its files.",
  PAGE_TOKEN_INVALID: "The page position no longer applies to these filters; go to the first page.",
  PERMISSION_DENIED: "Your role may not do this.",
  NOT_FOUND: "It does not exist, or no longer exists.",
  UNAVAILABLE: "A service the console depends on is unavailable; try again shortly.",
};

const BOUND = 2000;

function bounded(text: string): string {
  return text.length > BOUND ? `${text.slice(0, BOUND)}…` : text;
}

/** Turns anything a call threw into words (see the module comment). */
export function describeError(err: unknown): DescribedError {
  if (!(err instanceof ConnectError)) {
    return {
      title: "Could not reach the console server",
      message: "Check your connection and try again.",
      reason: null,
      explanation: null,
      metadata: {},
      fieldErrors: {},
      code: null,
      conflict: false,
    };
  }
  const info = safeFindErrorInfo(err);
  const reason = info?.reason ? bounded(info.reason) : null;
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(info?.metadata ?? {})) metadata[bounded(k)] = bounded(v);
  const fieldErrors: Record<string, string> = {};
  const field = metadata.field;
  const raw = bounded(err.rawMessage.trim());
  // A failure below the protocol (fetch failed, a proxy's HTML page) arrives as Unknown or
  // Unavailable with the browser's own wording; say what it means instead.
  const offline = err.code === Code.Unknown && (raw === "" || /fetch|network|load failed/i.test(raw));
  if (field && (err.code === Code.InvalidArgument || err.code === Code.OutOfRange)) fieldErrors[field] = raw || "This value was refused.";
  const conflict = err.code === Code.Aborted || reason === "CONFLICT";
  return {
    title: offline ? "Could not reach the console server" : (TITLES[err.code] ?? "Something went wrong"),
    message: offline ? "Check your connection and try again." : raw || (TITLES[err.code] ?? "The call failed."),
    reason,
    explanation: reason ? (REASONS[reason] ?? null) : null,
    metadata,
    fieldErrors,
    code: err.code,
    conflict,
  };
}

function safeFindErrorInfo(err: ConnectError) {
  try {
    return err.findDetails(ErrorInfoSchema)[0];
  } catch {
    // A detail that does not decode is no reason to hide the message.
    return undefined;
  }
}

/** Whether a failed query is worth retrying by itself (an outage), not a refusal. */
export function isRetryable(err: unknown): boolean {
  if (!(err instanceof ConnectError)) return true;
  return err.code === Code.Unavailable || err.code === Code.Unknown || err.code === Code.DeadlineExceeded;
}

/** Whether the error is a NotFound refusal. */
export function isNotFound(err: unknown): boolean {
  return err instanceof ConnectError && err.code === Code.NotFound;
}
