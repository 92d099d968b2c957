import { generateSigningKey, licenseClaims, signJwt, TOKEN_TYPES } from "@lcp/tokens";
import { describe, expect, it } from "vitest";
import { decodeToken } from "../src/lib/jwt.js";

describe("licence token display", () => {
  it("reads the header and claims of a licence token signed by the control plane's key format", async () => {
    const key = await generateSigningKey();
    const now = new Date("2026-01-01T00:00:00Z");
    const token = signJwt({
      typ: TOKEN_TYPES.license,
      claims: { ...licenseClaims({ licenseId: "lic-1", deploymentId: "dep-1", entitlements: ["imaging", "max-users:50"], notBefore: now, expiresAt: new Date("2027-01-01T00:00:00Z") }) },
      kid: key.kid,
      privateKeyPkcs8Pem: key.privateKeyPkcs8Pem,
      issuer: "https://lcp.local/licensing",
      now,
    });
    const decoded = decodeToken(token);
    if (!decoded.ok) throw new Error(decoded.problem);
    expect(decoded.header).toMatchObject({ alg: "EdDSA", typ: "license+jwt", kid: key.kid });
    expect(decoded.claims).toMatchObject({ sub: "lic-1", dep: "dep-1", ent: ["imaging", "max-users:50"], iss: "https://lcp.local/licensing" });
  });

  it("does not verify: a token with a forged signature reads the same (the box verifies, not the browser)", () => {
    const payload = Buffer.from(JSON.stringify({ sub: "l" })).toString("base64url");
    const decoded = decodeToken(`${Buffer.from('{"alg":"EdDSA"}').toString("base64url")}.${payload}.Zm9yZ2Vk`);
    expect(decoded.ok).toBe(true);
  });

  it("says why something is not a readable token", () => {
    for (const bad of ["", "a.b", "a.b.c.d", "!!.??.x", `${Buffer.from("[1]").toString("base64url")}.${Buffer.from("{}").toString("base64url")}.s`, "x".repeat(20_000)]) {
      const d = decodeToken(bad);
      expect(d.ok, bad.slice(0, 20)).toBe(false);
    }
  });
});
