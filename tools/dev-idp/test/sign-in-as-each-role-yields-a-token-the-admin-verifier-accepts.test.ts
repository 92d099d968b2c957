import { ROLES } from "@lcp/domain";
import { createAdminTokenVerifier, createTrustingFetch } from "@lcp/tokens";
import { decodeJwt, decodeProtectedHeader } from "jose";
import * as oidc from "openid-client";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { CLI_REDIRECT_URI, MAX_CREDENTIAL_LENGTH } from "../provider.js";
import { discover, SignInError, signInAs } from "../sign-in.js";
import { startTestIdp, type TestIdp } from "./support.js";

describe("signInAs against the dev identity provider", () => {
  let t: TestIdp;
  beforeAll(async () => {
    t = await startTestIdp({ accessTokenTtlSeconds: 120 });
  });
  afterAll(() => t?.close());

  const verifier = () =>
    createAdminTokenVerifier({ issuer: t.idp.issuer, audience: t.idp.audience, jwks: new URL(t.idp.jwksUrl), jwksCaPem: t.caPem, rolesClaim: t.idp.rolesClaim });

  it("has one user per role, named after it, with a 16-character base32 password", () => {
    expect(t.idp.users.map((u) => [u.username, u.role])).toEqual(ROLES.map((r) => [r, r]));
    for (const user of t.idp.users) {
      expect(user.password).toMatch(/^[A-Z2-7]{16}$/);
      expect(user.name).not.toBe("");
    }
    expect(new Set(t.idp.users.map((u) => u.password)).size).toBe(ROLES.length);
  });

  it("signs in as each role and gets an ES256 JWT the unchanged admin verifier accepts with that one role", async () => {
    for (const user of t.idp.users) {
      const { accessToken, expiresAt } = await signInAs({ issuer: t.idp.issuer, caPem: t.caPem, username: user.username, password: user.password });
      expect(decodeProtectedHeader(accessToken).alg).toBe("ES256");
      expect(decodeJwt(accessToken)).toMatchObject({ iss: t.idp.issuer, aud: t.idp.audience, sub: user.username, roles: [user.role] });
      const verdict = await verifier().verify(accessToken);
      expect(verdict).toEqual({ ok: true, subject: user.username, roles: [user.role], expiresAt });
      // The lifetime is the provider's setting.
      const ttl = expiresAt.getTime() - Date.now();
      expect(ttl).toBeGreaterThan(100_000);
      expect(ttl).toBeLessThanOrEqual(120_000);
    }
  });

  it("refuses a wrong password and an unknown user alike, with the page's message", async () => {
    const support = t.idp.users.find((u) => u.role === "support")!;
    const errors = vi.spyOn(console, "error");
    const logs = vi.spyOn(console, "log");
    try {
      for (const [username, password] of [
        [support.username, "WRONGPASSWORD234"],
        ["nobody", support.password],
        [support.username, ""],
      ] as const) {
        const err = await signInAs({ issuer: t.idp.issuer, caPem: t.caPem, username, password }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(SignInError);
        expect(err).toMatchObject({ reason: "refused", message: "sign-in refused: Wrong username or password." });
      }
      // Nothing the provider printed carries a password.
      const printed = [...errors.mock.calls, ...logs.mock.calls].flat().map(String).join("\n");
      expect(printed).not.toContain("WRONGPASSWORD234");
      expect(printed).not.toContain(support.password);
    } finally {
      errors.mockRestore();
      logs.mockRestore();
    }
  });

  it("refuses a username or password longer than 256 characters", async () => {
    const support = t.idp.users.find((u) => u.role === "support")!;
    for (const [username, password] of [
      ["s".repeat(MAX_CREDENTIAL_LENGTH + 1), support.password],
      [support.username, `${support.password}${"x".repeat(MAX_CREDENTIAL_LENGTH)}`],
    ] as const) {
      const err = await signInAs({ issuer: t.idp.issuer, caPem: t.caPem, username, password }).catch((e: unknown) => e);
      expect(err).toMatchObject({ reason: "refused", message: "sign-in refused: Username and password must each be at most 256 characters." });
    }
    // Exactly 256 is still a (wrong) password, not an over-long one.
    const err = await signInAs({ issuer: t.idp.issuer, caPem: t.caPem, username: support.username, password: "p".repeat(MAX_CREDENTIAL_LENGTH) }).catch((e: unknown) => e);
    expect(err).toMatchObject({ reason: "refused", message: "sign-in refused: Wrong username or password." });
  });

  it("says the provider is unreachable when nothing listens, and refuses a certificate from another CA", async () => {
    const closed = await signInAs({ issuer: "https://localhost:1", caPem: t.caPem, username: "support", password: "x" }).catch((e: unknown) => e);
    expect(closed).toMatchObject({ reason: "unreachable" });
    const foreign = await signInAs({ issuer: t.idp.issuer, caPem: t.pki.foreignCa.certPem, username: "support", password: "x" }).catch((e: unknown) => e);
    expect(foreign).toBeInstanceOf(SignInError);
    expect((foreign as SignInError).reason).toBe("protocol");
  });

  it("refuses an authorization request without PKCE, and one for a redirect URI the client did not register", async () => {
    const fetch = createTrustingFetch({ caPem: t.caPem });
    const config = await discover(t.idp.issuer, "lcp-cli", undefined, fetch);
    const noPkce = oidc.buildAuthorizationUrl(config, { redirect_uri: CLI_REDIRECT_URI, scope: "openid" });
    const res = await fetch(noPkce, { redirect: "manual" });
    expect(res.status).toBe(303);
    const back = new URL(res.headers.get("location")!);
    expect(`${back.origin}${back.pathname}`).toBe(CLI_REDIRECT_URI);
    expect(back.searchParams.get("error")).toBe("invalid_request");
    expect(back.searchParams.get("error_description")).toMatch(/PKCE/);

    const elsewhere = oidc.buildAuthorizationUrl(config, { redirect_uri: "https://evil.example/cb", scope: "openid", code_challenge: "x".repeat(43), code_challenge_method: "S256" });
    const page = await fetch(elsewhere, { redirect: "manual" });
    // Never redirected to an unregistered URI: an error page on the provider instead.
    expect(page.status).toBe(400);
    expect(page.headers.get("location")).toBeNull();
    expect(await page.text()).toContain("redirect_uri");
  });
});
