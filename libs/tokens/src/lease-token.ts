/**
 * The lease token (docs/design.md §6): what lets a box run offline for the grace window.
 * Header `typ: lease+jwt`; claims iss, sub (licence id), dep, fph, st, seq, iat, exp = iat + grace window.
 */
import { TOKEN_TYPES } from "./signing-key.js";
import { refuse, type TokenRefusal } from "./token-refusal.js";
import { isNonEmptyString, isNumericDate, verifyOwnToken, type VerifyTokenOptions } from "./verify-own-token.js";

/** The states a lease can carry; a LOCKED box gets no lease at all. */
export const LEASE_STATUSES = ["ACTIVE", "SUSPENDED"] as const;

/** One of {@link LEASE_STATUSES}. */
export type LeaseStatus = (typeof LEASE_STATUSES)[number];

// Lowercase hex of a hash (SHA-256 is 64 digits); the length range tolerates another digest.
const FINGERPRINT_HASH_RE = /^[0-9a-f]{32,128}$/;

/** The claims of a verified lease token. */
export interface LeaseTokenClaims {
  iss: string;
  /** The licence id. */
  sub: string;
  /** The deployment id. */
  dep: string;
  /** Hash (lowercase hex) of the bound hardware fingerprint. */
  fph: string;
  st: LeaseStatus;
  /** Strictly increasing per licence; the box refuses a lease older than the one it holds. */
  seq: number;
  iat: number;
  /** iat + grace window. */
  exp: number;
}

/** Input of {@link leaseClaims}. */
export interface LeaseClaimsInput {
  licenseId: string;
  deploymentId: string;
  fingerprintHash: string;
  status: LeaseStatus;
  seq: number;
  /** The signing time: pass the same `now` to `signJwt`, so `exp - iat` is exactly the grace window. */
  issuedAt: Date;
  /** The offline grace window (settings.grace_window), in milliseconds. */
  graceWindowMs: number;
}

/** The claims `signJwt` needs for a lease token (it adds `iss` and `iat`). */
export type LeaseClaimsToSign = Omit<LeaseTokenClaims, "iss" | "iat">;

/**
 * Builds the claims of a lease token, for `signJwt({ typ: TOKEN_TYPES.lease, … })`.
 * @throws TypeError on a bad id, fingerprint hash, status, seq or grace window.
 */
export function leaseClaims(input: LeaseClaimsInput): LeaseClaimsToSign {
  if (!isNonEmptyString(input.licenseId)) throw new TypeError("licenseId must be a non-empty string");
  if (!isNonEmptyString(input.deploymentId)) throw new TypeError("deploymentId must be a non-empty string");
  if (!FINGERPRINT_HASH_RE.test(input.fingerprintHash)) throw new TypeError("fingerprintHash must be lowercase hex");
  if (!(LEASE_STATUSES as readonly string[]).includes(input.status)) throw new TypeError(`status must be one of ${LEASE_STATUSES.join(", ")}`);
  if (!Number.isSafeInteger(input.seq) || input.seq < 1) throw new TypeError("seq must be an integer >= 1");
  if (!Number.isFinite(input.graceWindowMs) || input.graceWindowMs < 1000) throw new TypeError("graceWindowMs must be at least one second");
  const iat = Math.floor(input.issuedAt.getTime() / 1000);
  return {
    sub: input.licenseId,
    dep: input.deploymentId,
    fph: input.fingerprintHash,
    st: input.status,
    seq: input.seq,
    exp: iat + Math.floor(input.graceWindowMs / 1000),
  };
}

/** The verdict on a lease token. */
export type LeaseTokenVerdict = { ok: true; claims: LeaseTokenClaims; kid: string } | TokenRefusal;

/**
 * Verifies a lease token: EdDSA with a key from `jwks`, our issuer, `typ: lease+jwt` (so a
 * licence can never pass as a lease), unexpired, with well-formed claims. Comparing `seq` with the
 * last lease held and `fph` with the box's own fingerprint is the caller's job.
 */
export async function verifyLeaseToken(token: string, options: VerifyTokenOptions): Promise<LeaseTokenVerdict> {
  const verified = await verifyOwnToken(token, TOKEN_TYPES.lease, ["iss", "sub", "dep", "fph", "st", "seq", "iat", "exp"], options);
  if (!verified.ok) return verified;
  const p = verified.payload;
  if (
    !isNonEmptyString(p.sub) ||
    !isNonEmptyString(p["dep"]) ||
    typeof p["fph"] !== "string" ||
    !FINGERPRINT_HASH_RE.test(p["fph"]) ||
    !(LEASE_STATUSES as readonly unknown[]).includes(p["st"]) ||
    !Number.isSafeInteger(p["seq"]) ||
    (p["seq"] as number) < 1 ||
    !isNumericDate(p.iat) ||
    !isNumericDate(p.exp)
  ) {
    return refuse("TOKEN_CLAIMS_INVALID", "lease token claims have the wrong shape");
  }
  const claims: LeaseTokenClaims = {
    iss: p.iss as string,
    sub: p.sub,
    dep: p["dep"],
    fph: p["fph"],
    st: p["st"] as LeaseStatus,
    seq: p["seq"] as number,
    iat: p.iat,
    exp: p.exp,
  };
  return { ok: true, claims, kid: verified.kid };
}
