/**
 * The published key set: what `SigningKeyService.GetJwks` serves and what verifiers (the control
 * plane, the appliance SDK offline) trust.
 */
import { createLocalJWKSet, type JSONWebKeySet, type JWK, type JWTVerifyGetKey } from "jose";

/** A key set ready for verification; build once per JWKS and reuse (it caches imported keys). */
export type JwksVerifierSet = JWTVerifyGetKey;

/**
 * Builds a JWKS from public JWKs (NEXT, ACTIVE and RETIRED keys; REVOKED ones are left out by the
 * caller). Private members are stripped defensively so a private JWK passed by mistake is never published.
 */
export function buildJwks(publicJwks: readonly JWK[]): JSONWebKeySet {
  return {
    keys: publicJwks.map((jwk) => {
      const { d, p, q, dp, dq, qi, k, ...publicPart } = jwk as JWK & Record<string, unknown>;
      void [d, p, q, dp, dq, qi, k];
      return publicPart as JWK;
    }),
  };
}

/** Wraps a JWKS for jose's `jwtVerify`; only keys in this set can ever verify a token. */
export function createJwksVerifierSet(jwks: JSONWebKeySet): JwksVerifierSet {
  return createLocalJWKSet(jwks);
}
