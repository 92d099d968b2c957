/**
 * The development admin-token issuer (docs/design.md §4): with no OIDC issuer configured, an Ed25519
 * key is generated once into the PKI folder, the apps trust its JWKS, and `npm run token` mints from it.
 */
import { randomUUID } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, SignJWT, type JSONWebKeySet, type JWK } from "jose";
import { readOrCreateFile } from "./write-file-once.js";

/** The development issuer's `iss`; never a real organisation's issuer. */
export const DEV_ADMIN_ISSUER = "https://dev-issuer.lcp.local";
/** The audience admin tokens are minted for and the apps expect. */
export const DEV_ADMIN_AUDIENCE = "lcp-admin";

/** Input of {@link mintAdminToken}. */
export interface MintAdminTokenInput {
  /** The issuer's private Ed25519 JWK (with `kid`). */
  privateJwk: JWK;
  issuer: string;
  audience: string;
  subject: string;
  roles: readonly string[];
  ttlSeconds: number;
  /** Issue time (default: the current time). */
  now?: Date;
}

/** Mints an admin bearer token: alg EdDSA, typ JWT, the key's `kid`; claims iss, aud, sub, roles, iat, exp, jti. */
export async function mintAdminToken(input: MintAdminTokenInput): Promise<string> {
  if (!input.privateJwk.kid) throw new TypeError("admin issuer JWK has no kid");
  if (!Number.isSafeInteger(input.ttlSeconds) || input.ttlSeconds < 1) throw new TypeError("ttlSeconds must be a positive integer");
  const key = await importJWK(input.privateJwk, "EdDSA");
  const iat = Math.floor((input.now ?? new Date()).getTime() / 1000);
  return new SignJWT({ roles: [...input.roles] })
    .setProtectedHeader({ alg: "EdDSA", typ: "JWT", kid: input.privateJwk.kid })
    .setIssuer(input.issuer)
    .setAudience(input.audience)
    .setSubject(input.subject)
    .setIssuedAt(iat)
    .setExpirationTime(iat + input.ttlSeconds)
    .setJti(randomUUID())
    .sign(key);
}

/** Options of the `mint` shortcut; issuer, audience and key are the dev issuer's. */
export type DevMintOptions = Omit<MintAdminTokenInput, "privateJwk" | "issuer" | "audience">;

/** The development issuer: what the apps trust (issuer, audience, jwks) and a way to mint from it. */
export interface DevAdminIssuer {
  issuer: typeof DEV_ADMIN_ISSUER;
  audience: typeof DEV_ADMIN_AUDIENCE;
  /** Public keys, for `createAdminTokenVerifier({ jwks })`. */
  jwks: JSONWebKeySet;
  /** Mints an admin token from this issuer. */
  mint(options: DevMintOptions): Promise<string>;
}

/**
 * Returns the development issuer kept in `pkiDir`: `admin-issuer.jwk` (private, mode 0600) is
 * created on first use and reused ever after, so tokens minted by `npm run token` keep working
 * across restarts; `admin-issuer.jwks.json` holds the public half for anyone who wants to look.
 */
export async function ensureDevAdminIssuer(pkiDir: string): Promise<DevAdminIssuer> {
  const privatePath = join(pkiDir, "admin-issuer.jwk");
  const text = await readOrCreateFile(privatePath, async () => {
    const { privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
    const jwk = await exportJWK(privateKey);
    const kid = await calculateJwkThumbprint({ kty: jwk.kty, crv: jwk.crv, x: jwk.x }, "sha256");
    return `${JSON.stringify({ ...jwk, kid, alg: "EdDSA", use: "sig" }, null, 2)}\n`;
  });
  let privateJwk: JWK;
  try {
    privateJwk = JSON.parse(text) as JWK;
  } catch {
    throw new Error(`${privatePath}: not a JSON JWK`);
  }
  if (privateJwk.kty !== "OKP" || privateJwk.crv !== "Ed25519" || !privateJwk.d || !privateJwk.x || !privateJwk.kid) {
    throw new Error(`${privatePath}: not a private Ed25519 JWK with a kid`);
  }
  const { kty, crv, x, kid } = privateJwk;
  const jwks: JSONWebKeySet = { keys: [{ kty, crv, x, kid, alg: "EdDSA", use: "sig" }] };
  // The public file is derived, so it is simply rewritten to match the private key every time.
  await writeFile(join(pkiDir, "admin-issuer.jwks.json"), `${JSON.stringify(jwks, null, 2)}\n`, { mode: 0o644 });
  return {
    issuer: DEV_ADMIN_ISSUER,
    audience: DEV_ADMIN_AUDIENCE,
    jwks,
    mint: (options) => mintAdminToken({ ...options, privateJwk, issuer: DEV_ADMIN_ISSUER, audience: DEV_ADMIN_AUDIENCE }),
  };
}
