/**
 * The licence token (docs/design.md §6): what a box is shipped with and presents to `Activate`.
 * Header `typ: license+jwt`; claims iss, sub (licence id), dep, ent, iat, nbf, exp (term end), jti.
 */
import { randomUUID } from "node:crypto";
import { TOKEN_TYPES } from "./signing-key.js";
import type { TokenRefusal } from "./token-refusal.js";
import { refuse } from "./token-refusal.js";
import { isNonEmptyString, isNumericDate, verifyOwnToken, type VerifyTokenOptions } from "./verify-own-token.js";

/** The claims of a verified licence token. */
export interface LicenseTokenClaims {
  iss: string;
  /** The licence id. */
  sub: string;
  /** The deployment id. */
  dep: string;
  /** Entitlements (feature names). */
  ent: string[];
  iat: number;
  nbf: number;
  /** End of the licence term (seconds). */
  exp: number;
  /** Unique token id. */
  jti: string;
}

/** Input of {@link licenseClaims}. */
export interface LicenseClaimsInput {
  licenseId: string;
  deploymentId: string;
  entitlements: readonly string[];
  /** Start of the term. */
  notBefore: Date;
  /** End of the term. */
  expiresAt: Date;
  /** Token id; a random UUID by default. */
  tokenId?: string;
}

/** The claims `signJwt` needs for a licence token (it adds `iss` and `iat`). */
export type LicenseClaimsToSign = Omit<LicenseTokenClaims, "iss" | "iat">;

/**
 * Builds the claims of a licence token, for `signJwt({ typ: TOKEN_TYPES.license, … })`.
 * @throws TypeError on empty ids, non-string entitlements or a term that ends before it starts.
 */
export function licenseClaims(input: LicenseClaimsInput): LicenseClaimsToSign {
  if (!isNonEmptyString(input.licenseId)) throw new TypeError("licenseId must be a non-empty string");
  if (!isNonEmptyString(input.deploymentId)) throw new TypeError("deploymentId must be a non-empty string");
  if (!input.entitlements.every(isNonEmptyString)) throw new TypeError("entitlements must be non-empty strings");
  const nbf = Math.floor(input.notBefore.getTime() / 1000);
  const exp = Math.floor(input.expiresAt.getTime() / 1000);
  if (!(exp > nbf)) throw new TypeError("licence term must end after it starts");
  return {
    sub: input.licenseId,
    dep: input.deploymentId,
    ent: [...input.entitlements],
    nbf,
    exp,
    jti: input.tokenId ?? randomUUID(),
  };
}

/** The verdict on a licence token. */
export type LicenseTokenVerdict = { ok: true; claims: LicenseTokenClaims; kid: string } | TokenRefusal;

/**
 * Verifies a licence token: EdDSA with a key from `jwks`, our issuer, `typ: license+jwt` (so a
 * lease can never pass as a licence), within its term, with well-formed claims.
 */
export async function verifyLicenseToken(token: string, options: VerifyTokenOptions): Promise<LicenseTokenVerdict> {
  const verified = await verifyOwnToken(
    token,
    TOKEN_TYPES.license,
    ["iss", "sub", "dep", "ent", "iat", "nbf", "exp", "jti"],
    options,
  );
  if (!verified.ok) return verified;
  const p = verified.payload;
  // The signature proves who made the token, not that the maker wrote the right shapes; checking
  // here keeps a buggy or old signer from feeding `undefined` ids into the domain.
  if (
    !isNonEmptyString(p.sub) ||
    !isNonEmptyString(p["dep"]) ||
    !Array.isArray(p["ent"]) ||
    !p["ent"].every((e) => typeof e === "string") ||
    !isNumericDate(p.iat) ||
    !isNumericDate(p.nbf) ||
    !isNumericDate(p.exp) ||
    !isNonEmptyString(p.jti)
  ) {
    return refuse("TOKEN_CLAIMS_INVALID", "licence token claims have the wrong shape");
  }
  const claims: LicenseTokenClaims = {
    iss: p.iss as string,
    sub: p.sub,
    dep: p["dep"],
    ent: [...(p["ent"] as string[])],
    iat: p.iat,
    nbf: p.nbf,
    exp: p.exp,
    jti: p.jti,
  };
  return { ok: true, claims, kid: verified.kid };
}
