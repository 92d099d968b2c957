import { describe, expect, it } from "vitest";
import {
  buildJwks,
  createJwksVerifierSet,
  generateSigningKey,
  leaseClaims,
  licenseClaims,
  signJwt,
  TOKEN_TYPES,
  verifyLeaseToken,
  verifyLicenseToken,
  type GeneratedSigningKey,
} from "../src/index.js";

const ISSUER = "https://lcp.test/signing";
const NOW = new Date("2030-01-01T00:00:00Z");
const DAY = 86_400_000;
const FPH = "a".repeat(64);

function licenseToken(key: GeneratedSigningKey, overrides: Partial<Parameters<typeof licenseClaims>[0]> = {}, now = NOW) {
  return signJwt({
    typ: TOKEN_TYPES.license,
    kid: key.kid,
    privateKeyPkcs8Pem: key.privateKeyPkcs8Pem,
    issuer: ISSUER,
    now,
    claims: licenseClaims({
      licenseId: "lic_1",
      deploymentId: "dep_1",
      entitlements: ["imaging", "reports"],
      notBefore: now,
      expiresAt: new Date(now.getTime() + 365 * DAY),
      ...overrides,
    }),
  });
}

function leaseToken(key: GeneratedSigningKey, now = NOW, seq = 1) {
  return signJwt({
    typ: TOKEN_TYPES.lease,
    kid: key.kid,
    privateKeyPkcs8Pem: key.privateKeyPkcs8Pem,
    issuer: ISSUER,
    now,
    claims: leaseClaims({
      licenseId: "lic_1",
      deploymentId: "dep_1",
      fingerprintHash: FPH,
      status: "ACTIVE",
      seq,
      issuedAt: now,
      graceWindowMs: 14 * DAY,
    }),
  });
}

function b64urlJson(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}

describe("licence and lease tokens", async () => {
  const key = await generateSigningKey();
  const other = await generateSigningKey();
  const jwks = buildJwks([key.publicJwk]);

  it("generates a key whose kid is its RFC 7638 thumbprint and whose public JWK is publishable", () => {
    expect(key.publicJwk).toMatchObject({ kty: "OKP", crv: "Ed25519", alg: "EdDSA", use: "sig", kid: key.kid });
    expect(key.kid).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(key.privateKeyPkcs8Pem).toContain("BEGIN PRIVATE KEY");
    expect(Object.keys(jwks.keys[0]!)).not.toContain("d");
  });

  it("verifies a licence token it signed, with header, iss and iat set by the signer", async () => {
    const token = licenseToken(key);
    const header = JSON.parse(Buffer.from(token.split(".")[0]!, "base64url").toString());
    expect(header).toEqual({ alg: "EdDSA", typ: "license+jwt", kid: key.kid });
    const verdict = await verifyLicenseToken(token, { jwks, issuer: ISSUER, now: NOW });
    expect(verdict).toMatchObject({
      ok: true,
      kid: key.kid,
      claims: { iss: ISSUER, sub: "lic_1", dep: "dep_1", ent: ["imaging", "reports"], iat: NOW.getTime() / 1000 },
    });
  });

  it("verifies a lease token whose exp is iat + grace window", async () => {
    const verdict = await verifyLeaseToken(leaseToken(key, NOW, 7), { jwks: createJwksVerifierSet(jwks), issuer: ISSUER, now: NOW });
    expect(verdict.ok).toBe(true);
    if (!verdict.ok) return;
    expect(verdict.claims).toMatchObject({ sub: "lic_1", dep: "dep_1", fph: FPH, st: "ACTIVE", seq: 7 });
    expect(verdict.claims.exp - verdict.claims.iat).toBe(14 * 86_400);
  });

  it("refuses a lease presented as a licence", async () => {
    const verdict = await verifyLicenseToken(leaseToken(key), { jwks, issuer: ISSUER, now: NOW });
    expect(verdict).toMatchObject({ ok: false, code: "TOKEN_WRONG_TYPE" });
  });

  it("refuses a licence presented as a lease", async () => {
    const verdict = await verifyLeaseToken(licenseToken(key), { jwks, issuer: ISSUER, now: NOW });
    expect(verdict).toMatchObject({ ok: false, code: "TOKEN_WRONG_TYPE" });
  });

  it("refuses a token signed by a key that is not in the JWKS", async () => {
    const verdict = await verifyLicenseToken(licenseToken(other), { jwks, issuer: ISSUER, now: NOW });
    expect(verdict).toMatchObject({ ok: false, code: "TOKEN_UNKNOWN_KEY" });
  });

  it("refuses a token signed by another key under a trusted kid", async () => {
    const forged = signJwt({ typ: TOKEN_TYPES.license, kid: key.kid, privateKeyPkcs8Pem: other.privateKeyPkcs8Pem, issuer: ISSUER, now: NOW, claims: licenseClaims({ licenseId: "lic_1", deploymentId: "dep_1", entitlements: [], notBefore: NOW, expiresAt: new Date(NOW.getTime() + DAY) }) });
    const verdict = await verifyLicenseToken(forged, { jwks, issuer: ISSUER, now: NOW });
    expect(verdict).toMatchObject({ ok: false, code: "TOKEN_BAD_SIGNATURE" });
  });

  it("refuses a token whose payload was edited after signing", async () => {
    const [h, p, s] = licenseToken(key).split(".") as [string, string, string];
    const claims = JSON.parse(Buffer.from(p, "base64url").toString());
    claims.ent.push("everything");
    const verdict = await verifyLicenseToken(`${h}.${b64urlJson(claims)}.${s}`, { jwks, issuer: ISSUER, now: NOW });
    expect(verdict).toMatchObject({ ok: false, code: "TOKEN_BAD_SIGNATURE" });
  });

  it("refuses a licence after its term and before it starts", async () => {
    const token = licenseToken(key, { expiresAt: new Date(NOW.getTime() + DAY) });
    expect(await verifyLicenseToken(token, { jwks, issuer: ISSUER, now: new Date(NOW.getTime() + 2 * DAY) })).toMatchObject({ ok: false, code: "TOKEN_EXPIRED" });
    expect(await verifyLicenseToken(token, { jwks, issuer: ISSUER, now: new Date(NOW.getTime() - 60_000) })).toMatchObject({ ok: false, code: "TOKEN_NOT_YET_VALID" });
    // Within the clock tolerance, a box whose clock is a little behind still accepts it.
    expect(await verifyLicenseToken(token, { jwks, issuer: ISSUER, now: new Date(NOW.getTime() - 60_000), clockToleranceSec: 300 })).toMatchObject({ ok: true });
  });

  it("refuses a lease once the grace window has passed", async () => {
    const verdict = await verifyLeaseToken(leaseToken(key), { jwks, issuer: ISSUER, now: new Date(NOW.getTime() + 15 * DAY) });
    expect(verdict).toMatchObject({ ok: false, code: "TOKEN_EXPIRED" });
  });

  it("refuses a token from another issuer", async () => {
    const verdict = await verifyLicenseToken(licenseToken(key), { jwks, issuer: "https://someone-else", now: NOW });
    expect(verdict).toMatchObject({ ok: false, code: "TOKEN_BAD_ISSUER" });
  });

  it("refuses claims of the wrong shape even when properly signed", async () => {
    const sign = (typ: "license+jwt" | "lease+jwt", claims: Record<string, unknown>) =>
      signJwt({ typ, kid: key.kid, privateKeyPkcs8Pem: key.privateKeyPkcs8Pem, issuer: ISSUER, now: NOW, claims });
    const exp = NOW.getTime() / 1000 + 3600;
    const lic = { sub: "lic_1", dep: "dep_1", ent: ["a"], nbf: NOW.getTime() / 1000, exp, jti: "j" };
    expect(await verifyLicenseToken(sign("license+jwt", { ...lic, ent: "a" }), { jwks, issuer: ISSUER, now: NOW })).toMatchObject({ code: "TOKEN_CLAIMS_INVALID" });
    expect(await verifyLicenseToken(sign("license+jwt", { ...lic, dep: 42 }), { jwks, issuer: ISSUER, now: NOW })).toMatchObject({ code: "TOKEN_CLAIMS_INVALID" });
    const { jti: _jti, ...noJti } = lic;
    expect(await verifyLicenseToken(sign("license+jwt", noJti), { jwks, issuer: ISSUER, now: NOW })).toMatchObject({ code: "TOKEN_CLAIMS_INVALID" });
    const lease = { sub: "lic_1", dep: "dep_1", fph: FPH, st: "ACTIVE", seq: 1, exp };
    for (const bad of [{ seq: 0 }, { seq: 1.5 }, { seq: "1" }, { st: "LOCKED" }, { fph: "not-hex" }, { sub: "" }]) {
      expect(await verifyLeaseToken(sign("lease+jwt", { ...lease, ...bad }), { jwks, issuer: ISSUER, now: NOW })).toMatchObject({ code: "TOKEN_CLAIMS_INVALID" });
    }
  });

  it("refuses alg none, HS256 and garbage before looking up a key", async () => {
    const [, p] = licenseToken(key).split(".") as [string, string];
    const none = `${b64urlJson({ alg: "none", typ: "license+jwt", kid: key.kid })}.${p}.`;
    expect(await verifyLicenseToken(none, { jwks, issuer: ISSUER, now: NOW })).toMatchObject({ code: "TOKEN_BAD_ALGORITHM" });
    expect(await verifyLicenseToken("not.a.jwt", { jwks, issuer: ISSUER, now: NOW })).toMatchObject({ code: "TOKEN_MALFORMED" });
    expect(await verifyLicenseToken("abc", { jwks, issuer: ISSUER, now: NOW })).toMatchObject({ code: "TOKEN_MALFORMED" });
  });

  it("keeps verifying tokens of a retired key while it stays in the JWKS", async () => {
    const both = buildJwks([key.publicJwk, other.publicJwk]);
    expect(await verifyLicenseToken(licenseToken(other), { jwks: both, issuer: ISSUER, now: NOW })).toMatchObject({ ok: true, kid: other.kid });
    expect(await verifyLicenseToken(licenseToken(key), { jwks: both, issuer: ISSUER, now: NOW })).toMatchObject({ ok: true, kid: key.kid });
  });

  it("rejects bad builder input instead of signing it", () => {
    expect(() => leaseClaims({ licenseId: "l", deploymentId: "d", fingerprintHash: FPH, status: "ACTIVE", seq: 0, issuedAt: NOW, graceWindowMs: DAY })).toThrow(/seq/);
    expect(() => licenseClaims({ licenseId: "l", deploymentId: "d", entitlements: [], notBefore: NOW, expiresAt: NOW })).toThrow(/term/);
  });
});
