/**
 * Request validation for SigningKeyService: the one place every field is checked and turned into
 * typed values. Everything here runs before any transaction starts, so a refused request never
 * writes a row. Refusals are DomainErrors; libs/rpc/src/errors.ts maps their codes to Connect
 * codes (INVALID_ARGUMENT, PAGE_TOKEN_INVALID, VALIDITY_OUT_OF_RANGE → InvalidArgument).
 */
import type { JsonObject } from "@bufbuild/protobuf";
import type { Duration } from "@bufbuild/protobuf/wkt";
import { clampPageSize, plainTextProblem } from "@lcp/domain";
import { isValidSpiffeName, MAX_CERTIFICATE_VALIDITY_MS, MIN_CERTIFICATE_VALIDITY_MS } from "@lcp/pki";
import {
  KeyState,
  type IssueApplianceCertificateRequest,
  type ListKeysRequest,
  type SignRequest,
} from "@lcp/proto/signing/v1/signing_key_service_pb";
import { DomainError } from "@lcp/rpc";
import { TOKEN_TYPES, type TokenType } from "@lcp/tokens";
import type { KeyLifecycleState } from "./keys/lifecycle.js";

/** Default and largest ListKeys page (the proto's contract). */
export const LIST_KEYS_PAGE = { default: 100, max: 500 } as const;
/** The largest claims object Sign accepts, in bytes of its JSON encoding (the proto's contract). */
export const MAX_CLAIMS_BYTES = 16 * 1024;
/** Appliance certificate lifetime when the request names none (the proto's contract). */
export const DEFAULT_CERTIFICATE_VALIDITY_MS = 30 * 86_400_000;
/** Longest `reason` kept in the audit trail; longer ones are refused rather than truncated. */
export const MAX_REASON_LENGTH = 1024;
// Longer than any kid we mint (a 43-character JWK thumbprint); bounds what we send to the database.
const MAX_KID_LENGTH = 128;

// Claims the service sets itself: a caller choosing its own issuer or issue time would make the
// token lie about who signed it and when.
const RESERVED_CLAIMS = ["iss", "iat"] as const;
// Registered time claims must be NumericDates, or verifiers would reject (or misread) the token.
const NUMERIC_DATE_CLAIMS = ["exp", "nbf"] as const;

const STATE_NAMES: Partial<Record<KeyState, KeyLifecycleState>> = {
  [KeyState.NEXT]: "NEXT",
  [KeyState.ACTIVE]: "ACTIVE",
  [KeyState.RETIRED]: "RETIRED",
  [KeyState.REVOKED]: "REVOKED",
};

function invalid(field: string, message: string): DomainError {
  return new DomainError("INVALID_ARGUMENT", message, { field });
}

/** The ListKeys position after the last key of a page: keys are ordered newest first by (created_at, kid). */
export interface KeyCursor {
  createdAt: Date;
  kid: string;
}

/** A validated ListKeys request. */
export interface ListKeysQuery {
  /** Only these states; empty for all. */
  states: KeyLifecycleState[];
  pageSize: number;
  after: KeyCursor | null;
}

/** Validates ListKeys: known states only, page_size 0..500, a page_token made by this service for the same filter. */
export function validateListKeys(req: ListKeysRequest): ListKeysQuery {
  const states: KeyLifecycleState[] = [];
  for (const state of req.states) {
    const name = STATE_NAMES[state];
    if (!name) throw invalid("states", `states holds an unknown key state (${state})`);
    if (!states.includes(name)) states.push(name);
  }
  states.sort();
  const size = clampPageSize(req.pageSize, LIST_KEYS_PAGE);
  if (!size.ok) throw new DomainError(size.code, size.message, { field: "page_size" });
  return { states, pageSize: size.pageSize, after: req.pageToken === "" ? null : decodePageToken(req.pageToken, states) };
}

/**
 * Encodes the position after `last` as an opaque page token. The filter is part of the token, so
 * a token replayed with another filter is refused instead of silently skipping keys.
 */
export function encodePageToken(last: KeyCursor, states: readonly KeyLifecycleState[]): string {
  return Buffer.from(JSON.stringify({ t: last.createdAt.getTime(), k: last.kid, f: states.join(",") })).toString("base64url");
}

function decodePageToken(token: string, states: readonly KeyLifecycleState[]): KeyCursor {
  const refuse = () => new DomainError("PAGE_TOKEN_INVALID", "page_token is not one this service issued for this filter", { field: "page_token" });
  if (token.length > 512) throw refuse();
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    throw refuse();
  }
  const { t, k, f } = (parsed ?? {}) as { t?: unknown; k?: unknown; f?: unknown };
  if (typeof t !== "number" || !Number.isSafeInteger(t) || typeof k !== "string" || k.length > MAX_KID_LENGTH || f !== states.join(",")) {
    throw refuse();
  }
  return { createdAt: new Date(t), kid: k };
}

/** Validates a key id naming an existing key: present and of sane length (whether it exists is the store's NotFound). */
export function validateKid(kid: string): string {
  if (kid === "") throw invalid("kid", "kid is required");
  if (kid.length > MAX_KID_LENGTH) throw invalid("kid", `kid is longer than ${MAX_KID_LENGTH} characters`);
  const problem = plainTextProblem("kid", kid);
  if (problem) throw invalid("kid", problem);
  return kid;
}

/** Validates an optional audit `reason`: bounded, and plain text over one or more lines. */
export function validateReason(reason: string): string {
  if (reason.length > MAX_REASON_LENGTH) throw invalid("reason", `reason is longer than ${MAX_REASON_LENGTH} characters`);
  const problem = plainTextProblem("reason", reason, { multiline: true });
  if (problem) throw invalid("reason", problem);
  return reason;
}

/** A validated Sign request. */
export interface SignInput {
  typ: TokenType;
  claims: JsonObject;
}

const TYPES = Object.values(TOKEN_TYPES) as string[];

/**
 * Validates Sign: `typ` is `license+jwt` or `lease+jwt`; claims are present, at most 16 KiB of
 * JSON, without `iss`/`iat` (the service sets them), and `exp`/`nbf`, when given, are NumericDates.
 */
export function validateSign(req: SignRequest): SignInput {
  if (!TYPES.includes(req.typ)) {
    throw invalid("typ", `typ must be one of ${TYPES.join(", ")} (got ${JSON.stringify(req.typ.slice(0, 64))})`);
  }
  const claims = req.claims;
  if (claims === undefined) throw invalid("claims", "claims are required");
  const bytes = Buffer.byteLength(JSON.stringify(claims), "utf8");
  if (bytes > MAX_CLAIMS_BYTES) throw invalid("claims", `claims are ${bytes} bytes once encoded; at most ${MAX_CLAIMS_BYTES} are accepted`);
  for (const name of RESERVED_CLAIMS) {
    if (Object.hasOwn(claims, name)) throw invalid("claims", `claim "${name}" is set by the signing service and may not be given`);
  }
  for (const name of NUMERIC_DATE_CLAIMS) {
    const value = claims[name];
    if (value !== undefined && (typeof value !== "number" || !Number.isFinite(value) || value < 0)) {
      throw invalid("claims", `claim "${name}" must be a NumericDate (seconds since the epoch)`);
    }
  }
  return { typ: req.typ as TokenType, claims };
}

/** A validated IssueApplianceCertificate request (the CSR itself is checked by @lcp/pki at issuance). */
export interface IssueCertificateInput {
  deploymentId: string;
  csrPem: string;
  validityMs: number;
}

/** Validates IssueApplianceCertificate: a deployment id usable in a SPIFFE id, a CSR, a validity of 1 min..397 days (default 30 d). */
export function validateIssueCertificate(req: IssueApplianceCertificateRequest): IssueCertificateInput {
  if (!isValidSpiffeName(req.deploymentId)) {
    throw invalid("deployment_id", "deployment_id must be 1–255 characters of A–Z a–z 0–9 . _ - (and not . or ..)");
  }
  if (req.csrPem.trim() === "") throw new DomainError("CSR_MALFORMED", "csr_pem is required", { field: "csr_pem" });
  const validityMs = req.validity ? durationMs(req.validity) : DEFAULT_CERTIFICATE_VALIDITY_MS;
  if (!(validityMs >= MIN_CERTIFICATE_VALIDITY_MS && validityMs <= MAX_CERTIFICATE_VALIDITY_MS)) {
    throw new DomainError("VALIDITY_OUT_OF_RANGE", "validity must be between 1 minute and 397 days", { field: "validity" });
  }
  return { deploymentId: req.deploymentId, csrPem: req.csrPem, validityMs };
}

function durationMs(d: Duration): number {
  return Number(d.seconds) * 1000 + Math.trunc(d.nanos / 1e6);
}
