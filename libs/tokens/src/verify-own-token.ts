/**
 * The verification both of our token kinds share: EdDSA only, our issuer, the exact `typ`, and
 * only keys from the given JWKS. Internal to this package; the public verifiers add the claim shapes.
 */
import { decodeProtectedHeader, jwtVerify, type JSONWebKeySet, type JWTPayload } from "jose";
import { createJwksVerifierSet, type JwksVerifierSet } from "./jwks.js";
import type { TokenType } from "./signing-key.js";
import { refuse, refusalFromJoseError, type TokenRefusal } from "./token-refusal.js";

/** Options shared by `verifyLicenseToken` and `verifyLeaseToken`. */
export interface VerifyTokenOptions {
  /** The trusted keys: a JWKS, or a set from `createJwksVerifierSet` (reuse it: it caches imported keys). */
  jwks: JSONWebKeySet | JwksVerifierSet;
  /** Our issuer; a token from any other is refused. */
  issuer: string;
  /** Verification time (default: the current time). The appliance SDK passes its own clock. */
  now?: Date;
  /** Allowed clock skew for `exp`/`nbf`, in seconds (default 0; callers pass settings.max_clock_skew). */
  clockToleranceSec?: number;
}

/** A verified token's payload and the id of the key that signed it. */
export interface VerifiedJwt {
  ok: true;
  payload: JWTPayload;
  kid: string;
}

// A JWKS object is turned into a key set once and reused, so repeated verifications against the
// same (unchanged) JWKS object do not re-import its keys every time.
const setsByJwks = new WeakMap<JSONWebKeySet, JwksVerifierSet>();

function keySetFor(jwks: JSONWebKeySet | JwksVerifierSet): JwksVerifierSet {
  if (typeof jwks === "function") return jwks;
  let set = setsByJwks.get(jwks);
  if (!set) {
    set = createJwksVerifierSet(jwks);
    setsByJwks.set(jwks, set);
  }
  return set;
}

/** Verifies signature, algorithm, issuer, `typ` and time claims of one of our tokens. Internal. */
export async function verifyOwnToken(
  token: string,
  typ: TokenType,
  requiredClaims: string[],
  options: VerifyTokenOptions,
): Promise<VerifiedJwt | TokenRefusal> {
  if (typeof token !== "string" || token.split(".").length !== 3) {
    return refuse("TOKEN_MALFORMED", "token is not a compact JWS");
  }
  let header;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    return refuse("TOKEN_MALFORMED", "token header is not valid JSON");
  }
  // We only ever sign with EdDSA; anything else (none, HS256 keyed with a public key…) is refused
  // before a key is even looked up.
  if (header.alg !== "EdDSA") {
    return refuse("TOKEN_BAD_ALGORITHM", "token is signed with an algorithm that is not accepted");
  }
  // We always set kid; without it jose would try any key of the right type, which hides rotation bugs.
  if (typeof header.kid !== "string" || header.kid === "") {
    return refuse("TOKEN_MALFORMED", 'token header has no "kid"');
  }
  try {
    const { payload } = await jwtVerify(token, keySetFor(options.jwks), {
      algorithms: ["EdDSA"],
      issuer: options.issuer,
      typ,
      currentDate: options.now,
      clockTolerance: options.clockToleranceSec ?? 0,
      requiredClaims,
    });
    return { ok: true, payload, kid: header.kid };
  } catch (error) {
    const refusal = refusalFromJoseError(error);
    if (refusal) return refusal;
    throw error;
  }
}

/** Whether a value is a non-empty string. */
export function isNonEmptyString(value: unknown): value is string {
  return typeof value === "string" && value !== "";
}

/** Whether a value is an integral NumericDate (seconds). */
export function isNumericDate(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}
