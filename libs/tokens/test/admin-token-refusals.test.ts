import { createHmac, createPublicKey } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWK } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAdminTokenVerifier, mintAdminToken } from "../src/index.js";

const ISSUER = "https://idp.example.org/realms/ops";
const AUDIENCE = "lcp-admin";
const NOW = new Date("2030-06-01T12:00:00Z");
const nowSec = NOW.getTime() / 1000;

const b64url = (value: unknown) => Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");

describe("admin token verifier", async () => {
  const { privateKey, publicKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid: "k1", alg: "EdDSA", use: "sig" };
  const privateJwk: JWK = { ...(await exportJWK(privateKey)), kid: "k1" };
  const jwks = { keys: [publicJwk] };
  const verifier = createAdminTokenVerifier({ issuer: ISSUER, audience: AUDIENCE, jwks });

  const claims = { iss: ISSUER, aud: AUDIENCE, sub: "alice", roles: ["support"], iat: nowSec, exp: nowSec + 3600 };
  const sign = (payload: Record<string, unknown>, key: CryptoKey = privateKey, kid = "k1") =>
    new SignJWT(payload).setProtectedHeader({ alg: "EdDSA", typ: "JWT", kid }).sign(key);

  it("accepts a valid token and returns subject, roles and expiry", async () => {
    const verdict = await verifier.verify(await sign(claims), NOW);
    expect(verdict).toEqual({ ok: true, subject: "alice", roles: ["support"], expiresAt: new Date((nowSec + 3600) * 1000) });
  });

  it("accepts tokens minted by mintAdminToken", async () => {
    const token = await mintAdminToken({ privateJwk, issuer: ISSUER, audience: AUDIENCE, subject: "bob", roles: ["auditor"], ttlSeconds: 60, now: NOW });
    expect(await verifier.verify(token, NOW)).toMatchObject({ ok: true, subject: "bob", roles: ["auditor"] });
  });

  it("refuses an expired token (beyond the clock tolerance)", async () => {
    const token = await sign({ ...claims, exp: nowSec - 31 });
    expect(await verifier.verify(token, NOW)).toMatchObject({ ok: false, code: "TOKEN_EXPIRED" });
    // 20 s late is within the default 30 s tolerance.
    expect(await verifier.verify(await sign({ ...claims, exp: nowSec - 20 }), NOW)).toMatchObject({ ok: true });
  });

  it("refuses a token from another issuer", async () => {
    expect(await verifier.verify(await sign({ ...claims, iss: "https://evil.example" }), NOW)).toMatchObject({ ok: false, code: "TOKEN_BAD_ISSUER" });
  });

  it("refuses a token for another audience", async () => {
    expect(await verifier.verify(await sign({ ...claims, aud: "another-app" }), NOW)).toMatchObject({ ok: false, code: "TOKEN_BAD_AUDIENCE" });
  });

  it("refuses alg none", async () => {
    const token = `${b64url({ alg: "none", typ: "JWT" })}.${b64url(claims)}.`;
    expect(await verifier.verify(token, NOW)).toMatchObject({ ok: false, code: "TOKEN_BAD_ALGORITHM" });
  });

  it("refuses HS256 signed with the public key as the HMAC secret (algorithm confusion)", async () => {
    const spkiPem = await exportSPKI(publicKey);
    const rawPublic = Buffer.from(publicJwk.x!, "base64url");
    const jwkJson = JSON.stringify(publicJwk);
    for (const secret of [spkiPem, rawPublic, jwkJson, createPublicKey(spkiPem).export({ format: "der", type: "spki" })]) {
      const signingInput = `${b64url({ alg: "HS256", typ: "JWT", kid: "k1" })}.${b64url(claims)}`;
      const mac = createHmac("sha256", secret).update(signingInput).digest("base64url");
      expect(await verifier.verify(`${signingInput}.${mac}`, NOW)).toMatchObject({ ok: false, code: "TOKEN_BAD_ALGORITHM" });
    }
  });

  it("refuses a bad signature and a key outside the JWKS", async () => {
    const token = await sign(claims);
    const [h, , s] = token.split(".");
    const escalated = `${h}.${b64url({ ...claims, roles: ["super_admin"] })}.${s}`;
    expect(await verifier.verify(escalated, NOW)).toMatchObject({ ok: false, code: "TOKEN_BAD_SIGNATURE" });
    const stranger = await generateKeyPair("EdDSA", { crv: "Ed25519" });
    expect(await verifier.verify(await sign(claims, stranger.privateKey, "k2"), NOW)).toMatchObject({ ok: false, code: "TOKEN_UNKNOWN_KEY" });
    // Same kid, other key: jose picks k1, and the signature does not verify.
    expect(await verifier.verify(await sign(claims, stranger.privateKey, "k1"), NOW)).toMatchObject({ ok: false, code: "TOKEN_BAD_SIGNATURE" });
  });

  it("refuses malformed tokens and tokens without sub or exp", async () => {
    for (const bad of ["", "abc", "a.b.c", `${b64url("{")}.${b64url(claims)}.x`]) {
      expect(await verifier.verify(bad, NOW)).toMatchObject({ ok: false, code: "TOKEN_MALFORMED" });
    }
    const { sub: _s, ...noSub } = claims;
    expect(await verifier.verify(await sign(noSub), NOW)).toMatchObject({ ok: false, code: "TOKEN_MALFORMED" });
    const { exp: _e, ...noExp } = claims;
    expect(await verifier.verify(await sign(noExp), NOW)).toMatchObject({ ok: false, code: "TOKEN_MALFORMED" });
    expect(await verifier.verify(await sign({ ...claims, sub: 7 }), NOW)).toMatchObject({ ok: false, code: "TOKEN_MALFORMED" });
  });

  it("refuses missing, empty, string and non-string-array roles", async () => {
    const { roles: _r, ...noRoles } = claims;
    for (const payload of [noRoles, { ...claims, roles: [] }, { ...claims, roles: "support" }, { ...claims, roles: "support auditor" }, { ...claims, roles: [1] }, { ...claims, roles: [""] }, { ...claims, roles: { support: true } }]) {
      expect(await verifier.verify(await sign(payload), NOW)).toMatchObject({ ok: false, code: "TOKEN_NO_ROLES" });
    }
  });

  it("reads roles from a dotted path and from a claim named with dots", async () => {
    const keycloak = createAdminTokenVerifier({ issuer: ISSUER, audience: AUDIENCE, jwks, rolesClaim: "realm_access.roles" });
    const { roles: _r, ...base } = claims;
    const token = await sign({ ...base, realm_access: { roles: ["auditor", "support"] } });
    expect(await keycloak.verify(token, NOW)).toMatchObject({ ok: true, roles: ["auditor", "support"] });
    expect(await keycloak.verify(await sign(claims), NOW)).toMatchObject({ ok: false, code: "TOKEN_NO_ROLES" });
    const auth0 = createAdminTokenVerifier({ issuer: ISSUER, audience: AUDIENCE, jwks, rolesClaim: "https://lcp.example/roles" });
    expect(await auth0.verify(await sign({ ...base, "https://lcp.example/roles": ["onboarding"] }), NOW)).toMatchObject({ ok: true, roles: ["onboarding"] });
  });

  it("refuses to be configured with HMAC or none", () => {
    expect(() => createAdminTokenVerifier({ issuer: ISSUER, audience: AUDIENCE, jwks, algorithms: ["HS256" as never] })).toThrow(/not allowed/);
    expect(() => createAdminTokenVerifier({ issuer: ISSUER, audience: AUDIENCE, jwks, algorithms: ["none" as never] })).toThrow(/not allowed/);
  });

  describe("with a remote JWKS", () => {
    let server: Server;
    let url: URL;
    beforeAll(async () => {
      server = createServer((req, res) => {
        if (req.url === "/jwks") {
          res.setHeader("content-type", "application/json");
          res.end(JSON.stringify(jwks));
        } else {
          res.statusCode = 500;
          res.end();
        }
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`);
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it("fetches the keys and verifies", async () => {
      const remote = createAdminTokenVerifier({ issuer: ISSUER, audience: AUDIENCE, jwks: url });
      expect(await remote.verify(await sign(claims), NOW)).toMatchObject({ ok: true, subject: "alice" });
    });

    it("reports unavailable keys as an outage, not a bad token", async () => {
      const broken = createAdminTokenVerifier({ issuer: ISSUER, audience: AUDIENCE, jwks: new URL("/missing", url) });
      expect(await broken.verify(await sign(claims), NOW)).toMatchObject({ ok: false, code: "TOKEN_KEYS_UNAVAILABLE" });
      // Nothing listens on port 1: a network failure is an outage too.
      const unreachable = createAdminTokenVerifier({ issuer: ISSUER, audience: AUDIENCE, jwks: new URL("http://127.0.0.1:1/jwks") });
      expect(await unreachable.verify(await sign(claims), NOW)).toMatchObject({ ok: false, code: "TOKEN_KEYS_UNAVAILABLE" });
    });
  });
});
