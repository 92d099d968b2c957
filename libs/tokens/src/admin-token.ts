/**
 * Verification of admin bearer tokens from the organisation's OIDC issuer (docs/design.md §4).
 * Issuer, audience and keys are configured; the roles come from a configurable claim.
 */
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  customFetch,
  decodeProtectedHeader,
  jwtVerify,
  type JSONWebKeySet,
  type JWSAlgorithm,
  type JWTPayload,
  type JWTVerifyGetKey,
} from "jose";
import { refuse, refusalFromJoseError, type TokenRefusal } from "./token-refusal.js";
import { createTrustingFetch } from "./trusting-fetch.js";

/** Asymmetric algorithms an admin verifier may accept; HMAC and `none` are deliberately absent. */
export const ADMIN_TOKEN_ALGORITHMS = ["EdDSA", "ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"] as const;

/** One of {@link ADMIN_TOKEN_ALGORITHMS}. */
export type AdminTokenAlgorithm = (typeof ADMIN_TOKEN_ALGORITHMS)[number];

/** Options for {@link createAdminTokenVerifier}. */
export interface AdminTokenVerifierOptions {
  /** Expected `iss`, exactly as the issuer writes it. */
  issuer: string;
  /** Expected `aud` (the token must list it). */
  audience: string;
  /** The issuer's public keys: an inline JWKS, or its `jwks_uri` fetched (and cached) by jose. */
  jwks: JSONWebKeySet | URL;
  /**
   * PEM certificates trusted, in addition to the system roots, when fetching a remote `jwks` (an
   * issuer behind a private or development CA: `OIDC_CA_FILE`). Ignored for an inline JWKS.
   */
  jwksCaPem?: string;
  /**
   * Claim holding the roles; a dotted path reaches into objects (`"realm_access.roles"`). A claim
   * whose own name contains dots (Auth0-style `"https://example.com/roles"`) is matched first.
   * Default `"roles"`.
   */
  rolesClaim?: string;
  /** Accepted signature algorithms. Default `["EdDSA", "ES256", "RS256"]`. */
  algorithms?: readonly AdminTokenAlgorithm[];
  /** Allowed clock skew for `exp`/`nbf`, in seconds. Default 30. */
  clockToleranceSec?: number;
}

/** A verified admin: who it is, the role names it claims (unknown ones grant nothing), and until when. */
export interface AdminTokenAccepted {
  ok: true;
  subject: string;
  roles: string[];
  expiresAt: Date;
}

/** The verdict on an admin token. */
export type AdminTokenVerdict = AdminTokenAccepted | TokenRefusal;

/** Verifies admin bearer tokens; made by {@link createAdminTokenVerifier}. */
export interface AdminTokenVerifier {
  /** Verifies a compact JWT (without the `Bearer ` prefix) as of `now` (default: the current time). */
  verify(token: string, now?: Date): Promise<AdminTokenVerdict>;
}

/**
 * Creates the verifier for admin bearer tokens.
 *
 * Refuses, each with its own code: malformed tokens or tokens without `sub`/`exp`
 * (TOKEN_MALFORMED), algorithms outside the list — `none` and HS256 signed with the public key as
 * the secret included (TOKEN_BAD_ALGORITHM), bad signatures (TOKEN_BAD_SIGNATURE), keys not in
 * the JWKS (TOKEN_UNKNOWN_KEY), expiry (TOKEN_EXPIRED), `nbf` in the future (TOKEN_NOT_YET_VALID),
 * another issuer (TOKEN_BAD_ISSUER) or audience (TOKEN_BAD_AUDIENCE), and a roles claim that is
 * missing, empty or not an array of strings (TOKEN_NO_ROLES). A space-separated roles *string* is
 * refused rather than split: issuers that emit one are misconfigured, and guessing a separator
 * could grant a role nobody assigned. When the keys cannot be fetched: TOKEN_KEYS_UNAVAILABLE.
 */
export function createAdminTokenVerifier(options: AdminTokenVerifierOptions): AdminTokenVerifier {
  const algorithms = [...(options.algorithms ?? (["EdDSA", "ES256", "RS256"] as const))];
  // Configuration is checked once, here: an HMAC or `none` entry would re-open algorithm confusion
  // (a public key used as an HMAC secret), so it is a startup error, not a per-request refusal.
  for (const alg of algorithms) {
    if (!(ADMIN_TOKEN_ALGORITHMS as readonly string[]).includes(alg)) {
      throw new TypeError(`admin token algorithm ${JSON.stringify(alg)} is not allowed; use one of ${ADMIN_TOKEN_ALGORITHMS.join(", ")}`);
    }
  }
  if (algorithms.length === 0) throw new TypeError("admin token verifier needs at least one algorithm");
  if (!options.issuer) throw new TypeError("admin token verifier needs an issuer");
  if (!options.audience) throw new TypeError("admin token verifier needs an audience");
  const rolesPath = options.rolesClaim ?? "roles";
  const clockTolerance = options.clockToleranceSec ?? 30;
  const remote = options.jwks instanceof URL;
  const keys: JWTVerifyGetKey =
    options.jwks instanceof URL
      ? createRemoteJWKSet(options.jwks, options.jwksCaPem === undefined ? {} : { [customFetch]: createTrustingFetch({ caPem: options.jwksCaPem }) })
      : createLocalJWKSet(options.jwks);

  return {
    async verify(token, now) {
      if (typeof token !== "string" || token.split(".").length !== 3) {
        return refuse("TOKEN_MALFORMED", "token is not a compact JWS");
      }
      let alg: string | undefined;
      try {
        alg = decodeProtectedHeader(token).alg;
      } catch {
        return refuse("TOKEN_MALFORMED", "token header is not valid JSON");
      }
      // Checked before any key lookup so `none` and HS* never reach a key at all, whatever jose
      // would do with them.
      if (typeof alg !== "string" || !algorithms.includes(alg as AdminTokenAlgorithm)) {
        return refuse("TOKEN_BAD_ALGORITHM", "token is signed with an algorithm that is not accepted");
      }
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, keys, {
          issuer: options.issuer,
          audience: options.audience,
          algorithms: algorithms as JWSAlgorithm[],
          clockTolerance,
          currentDate: now,
          // A token without `exp` would be a password that never expires.
          requiredClaims: ["sub", "exp"],
        }));
      } catch (error) {
        const refusal = refusalFromJoseError(error);
        if (refusal) {
          // Admin tokens report missing/invalid standard claims as malformed: there is no
          // "claims" concept for callers to act on beyond "this is not a usable token".
          return refusal.code === "TOKEN_CLAIMS_INVALID" ? refuse("TOKEN_MALFORMED", refusal.message) : refusal;
        }
        // A fetch failure of a remote JWKS is an outage on our side, not a bad token.
        if (remote) return refuse("TOKEN_KEYS_UNAVAILABLE", "the issuer's keys could not be loaded");
        throw error;
      }
      if (typeof payload.sub !== "string" || payload.sub === "") {
        return refuse("TOKEN_MALFORMED", 'token "sub" claim must be a non-empty string');
      }
      const roles = readClaim(payload, rolesPath);
      if (!Array.isArray(roles) || roles.length === 0 || !roles.every((r) => typeof r === "string" && r !== "")) {
        return refuse("TOKEN_NO_ROLES", `token "${rolesPath}" claim must be a non-empty array of role names`);
      }
      return { ok: true, subject: payload.sub, roles: [...roles] as string[], expiresAt: new Date((payload.exp as number) * 1000) };
    },
  };
}

/** Reads a claim by exact name first, then as a dotted path through nested objects (how `rolesClaim` is read). */
export function readClaim(payload: JWTPayload, path: string): unknown {
  if (Object.hasOwn(payload, path)) return payload[path];
  let value: unknown = payload;
  for (const part of path.split(".")) {
    if (value === null || typeof value !== "object" || Array.isArray(value) || !Object.hasOwn(value, part)) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}
