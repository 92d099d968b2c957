/**
 * Accepting a lease on the box: the signature and format checks of `@lcp/tokens`, plus what only
 * the box can check — that the lease is for this deployment and fingerprint (and, at activation,
 * for the licence activated), and that it is newer than every lease it has seen (an old,
 * longer-lived lease replayed to a stolen box must not extend its life).
 *
 * Once running, a lease may name another licence of the box's deployment: "Choose New license"
 * supersedes the current licence and carries the binding over, and the lease seq carries over
 * with it (it counts per deployment binding), so the seq check alone keeps leases of the older
 * licence from being replayed.
 */
import { createHash } from "node:crypto";
import { decodeJwt, type JSONWebKeySet } from "jose";
import type { ApplianceLease } from "@lcp/domain";
import { verifyLeaseToken, type LeaseTokenClaims, type TokenRefusalCode } from "@lcp/tokens";
import type { ApplianceStateFile } from "./state-file.js";

/** Why the box refused a lease: a token refusal from `@lcp/tokens` or one of the box's own checks. */
export type LeaseRejectionCode =
  | TokenRefusalCode
  | "LEASE_SEQ_NOT_NEWER"
  | "LEASE_WRONG_LICENSE"
  | "LEASE_WRONG_DEPLOYMENT"
  | "LEASE_WRONG_FINGERPRINT";

/** The verdict on a lease. */
export type LeaseVerdict =
  | { ok: true; claims: LeaseTokenClaims }
  | { ok: false; code: LeaseRejectionCode; message: string; seq?: number };

/** What a lease is checked against. */
export interface LeaseCheck {
  jwks: JSONWebKeySet;
  issuer: string;
  /**
   * When set, the lease must name this licence (activation: the answer is for the licence we
   * activated). Left out for renewals, which may name the deployment's newer licence.
   */
  licenseId?: string;
  deploymentId: string;
  /** The box's raw fingerprint; the lease carries its SHA-256 (lowercase hex). */
  fingerprint: string;
  /** The lease must have a seq strictly greater than this. */
  highestSeq: number;
  /** Verification time (the box's clock). */
  now: number;
  maxClockSkewMs: number;
}

/**
 * The fingerprint hash a lease carries (`fph`): lowercase hex SHA-256 of the UTF-8 fingerprint,
 * the same form as `License.fingerprint_hash`.
 */
export function fingerprintHash(fingerprint: string): string {
  return createHash("sha256").update(fingerprint, "utf8").digest("hex");
}

/** Checks a lease received from the control plane. Never throws. */
export async function checkLease(token: string, check: LeaseCheck): Promise<LeaseVerdict> {
  let verdict;
  try {
    verdict = await verifyLeaseToken(token, {
      jwks: check.jwks,
      issuer: check.issuer,
      now: new Date(check.now),
      // The box's clock may drift by up to max_clock_skew from the server that set exp.
      clockToleranceSec: Math.floor(check.maxClockSkewMs / 1000),
    });
  } catch (error) {
    return { ok: false, code: "TOKEN_MALFORMED", message: `lease could not be verified: ${(error as Error).message}` };
  }
  if (!verdict.ok) return { ok: false, code: verdict.code, message: verdict.message, ...peekSeq(token) };
  return checkClaims(verdict.claims, check);
}

/**
 * The verdict on a lease a directive carries: "held" when it is the lease the box already trusts
 * (redelivered because an ack was lost), else the check of {@link checkLease}.
 */
export type OfferedLease = "held" | LeaseVerdict;

/**
 * Checks a lease the control plane offers a running box. No licence is pinned: a renewal's lease
 * names the deployment's new licence (see above).
 */
export async function checkOfferedLease(
  token: string,
  held: { file: ApplianceStateFile; holdsLease: boolean },
  check: Pick<LeaseCheck, "issuer" | "fingerprint" | "now">,
): Promise<OfferedLease> {
  const st = held.file;
  // The lease already held, redelivered because our ack was lost: nothing to do, nothing wrong.
  // (Unless its key left the set: then it is checked, and refused, like any other.)
  if (token === st.leaseToken && held.holdsLease && !st.leaseReplacement) return "held";
  return checkLease(token, {
    ...check,
    jwks: st.jwks,
    deploymentId: st.deploymentId,
    highestSeq: st.highestLeaseSeq,
    maxClockSkewMs: st.settings.maxClockSkewMs,
  });
}

/**
 * Re-verifies a lease read back from the state file. The signature is checked as of the lease's
 * own `iat`, because an expired lease is still the box's truth (it is what makes it LOCKED); the
 * expiry is judged by `evaluateApplianceState`, not here.
 */
export async function recheckStoredLease(token: string, check: Omit<LeaseCheck, "now" | "highestSeq" | "maxClockSkewMs"> & { highestSeq: number }): Promise<LeaseVerdict> {
  let iat: number | undefined;
  try {
    iat = decodeJwt(token).iat;
  } catch {
    return { ok: false, code: "TOKEN_MALFORMED", message: "stored lease is not a JWT" };
  }
  if (typeof iat !== "number") return { ok: false, code: "TOKEN_CLAIMS_INVALID", message: "stored lease has no iat" };
  // highestSeq − 1: the stored lease is allowed to be the highest one seen.
  return checkLease(token, { ...check, now: iat * 1000, maxClockSkewMs: 0, highestSeq: check.highestSeq - 1 });
}

function checkClaims(claims: LeaseTokenClaims, check: LeaseCheck): LeaseVerdict {
  const seq = claims.seq;
  if (check.licenseId !== undefined && claims.sub !== check.licenseId) {
    return { ok: false, code: "LEASE_WRONG_LICENSE", message: `lease is for licence ${claims.sub}, not ${check.licenseId}`, seq };
  }
  if (claims.dep !== check.deploymentId) {
    return { ok: false, code: "LEASE_WRONG_DEPLOYMENT", message: `lease is for deployment ${claims.dep}, not ${check.deploymentId}`, seq };
  }
  if (claims.fph !== fingerprintHash(check.fingerprint)) {
    return { ok: false, code: "LEASE_WRONG_FINGERPRINT", message: "lease is bound to another box's fingerprint", seq };
  }
  if (!(seq > check.highestSeq)) {
    return { ok: false, code: "LEASE_SEQ_NOT_NEWER", message: `lease seq ${seq} is not greater than ${check.highestSeq}, the highest seen`, seq };
  }
  return { ok: true, claims };
}

/** The verified claims in the form `evaluateApplianceState` takes (JWT seconds → ms). */
export function toApplianceLease(claims: Pick<LeaseTokenClaims, "st" | "exp" | "iat" | "seq">): ApplianceLease {
  return { st: claims.st, exp: claims.exp * 1000, iat: claims.iat * 1000, seq: claims.seq };
}

// For the rejection report only: the seq the (untrusted) token claims, to help an operator.
function peekSeq(token: string): { seq?: number } {
  try {
    const seq = decodeJwt(token)["seq"];
    return typeof seq === "number" ? { seq } : {};
  } catch {
    return {};
  }
}
