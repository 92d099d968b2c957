/**
 * Ed25519 signing keys and the signer for our own tokens (licence, lease) — docs/design.md §6.
 */
import { createPrivateKey, generateKeyPairSync, sign, type KeyObject } from "node:crypto";
import { calculateJwkThumbprint } from "jose";

/** The `typ` header of each of our token kinds; verification pins it so one kind never passes as another. */
export const TOKEN_TYPES = { license: "license+jwt", lease: "lease+jwt" } as const;

/** One of {@link TOKEN_TYPES}. */
export type TokenType = (typeof TOKEN_TYPES)[keyof typeof TOKEN_TYPES];

/** The public half of a signing key as published in the JWKS. */
export interface SigningPublicJwk {
  kty: "OKP";
  crv: "Ed25519";
  x: string;
  kid: string;
  alg: "EdDSA";
  use: "sig";
}

/** A freshly generated signing key; the private half is PKCS#8 PEM, to be wrapped before storage. */
export interface GeneratedSigningKey {
  kid: string;
  publicJwk: SigningPublicJwk;
  privateKeyPkcs8Pem: string;
}

/**
 * Generates an Ed25519 signing key. Its `kid` is the RFC 7638 JWK thumbprint (SHA-256, base64url)
 * of the public key, so the id is derived from the key and can be recomputed by anyone holding it.
 */
export async function generateSigningKey(): Promise<GeneratedSigningKey> {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const { kty, crv, x } = publicKey.export({ format: "jwk" });
  if (kty !== "OKP" || crv !== "Ed25519" || typeof x !== "string") throw new Error("unexpected Ed25519 JWK export");
  const kid = await calculateJwkThumbprint({ kty, crv, x }, "sha256");
  return {
    kid,
    publicJwk: { kty, crv, x, kid, alg: "EdDSA", use: "sig" },
    privateKeyPkcs8Pem: privateKey.export({ format: "pem", type: "pkcs8" }).toString(),
  };
}

/** Input of {@link signJwt}. */
export interface SignJwtInput {
  /** The token kind, written to the `typ` header. */
  typ: TokenType;
  /** The claims, e.g. from `licenseClaims` / `leaseClaims`; `iss` and `iat` are set by the signer. */
  claims: Record<string, unknown>;
  /** The signing key's id, written to the `kid` header. */
  kid: string;
  /** The signing key's private half (PKCS#8 PEM, unwrapped). */
  privateKeyPkcs8Pem: string;
  /** Our issuer URL/name, written as `iss`. */
  issuer: string;
  /** Signing time; `iat` is its whole seconds. */
  now: Date;
}

// Imported keys by kid. Parsing PKCS#8 costs far more than an Ed25519 signature, and `Sign` is on
// the hot path, so a key is parsed once per process. The PEM is kept alongside so a (buggy) caller
// reusing a kid with another key gets that key, not a stale one.
const keyCache = new Map<string, { pem: string; key: KeyObject }>();
const KEY_CACHE_LIMIT = 256; // far above the handful of live keys; bounds memory if kids churn

function privateKeyFor(kid: string, pem: string): KeyObject {
  const hit = keyCache.get(kid);
  if (hit && hit.pem === pem) return hit.key;
  const key = createPrivateKey({ key: pem, format: "pem" });
  if (key.asymmetricKeyType !== "ed25519") throw new TypeError(`signing key ${kid} is not an Ed25519 key`);
  if (keyCache.size >= KEY_CACHE_LIMIT) keyCache.delete(keyCache.keys().next().value as string);
  keyCache.set(kid, { pem, key });
  return key;
}

/**
 * Signs a compact JWS with header `{alg: "EdDSA", typ, kid}` and the claims plus `iss` and `iat`.
 *
 * Synchronous: it signs with node's `crypto.sign` on a cached `KeyObject` rather than jose's
 * WebCrypto path, because the signing service's goal is to stay within 2× of raw `crypto.sign`
 * (docs/design.md §11). The output is a standard JWS; jose verifies it (see the tests).
 */
export function signJwt(input: SignJwtInput): string {
  const header = { alg: "EdDSA", typ: input.typ, kid: input.kid };
  // iss/iat come last so a claims object can never override who signed it or when.
  const payload = { ...input.claims, iss: input.issuer, iat: Math.floor(input.now.getTime() / 1000) };
  const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  const signature = sign(null, Buffer.from(signingInput), privateKeyFor(input.kid, input.privateKeyPkcs8Pem));
  return `${signingInput}.${signature.toString("base64url")}`;
}

function b64url(text: string): string {
  return Buffer.from(text, "utf8").toString("base64url");
}
