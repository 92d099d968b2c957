import { createAdminTokenVerifier, createTrustingFetch } from "@lcp/tokens";
import { decodeJwt } from "jose";
import * as oidc from "openid-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { completeSignIn, discover } from "../sign-in.js";
import { CONSOLE_REDIRECT_URI, startTestIdp, type TestIdp } from "./support.js";

describe("the console client (confidential, code + PKCE, refresh tokens)", () => {
  let t: TestIdp;
  beforeAll(async () => {
    t = await startTestIdp({ accessTokenTtlSeconds: 30, refreshTokenTtlSeconds: 300 });
  });
  afterAll(() => t?.close());

  /** What the console's server does: discovery with its secret, PKCE, the login, the code exchange. */
  async function consoleSignIn(role: string, secret = t.idp.consoleClient.clientSecret) {
    const fetch = createTrustingFetch({ caPem: t.caPem });
    const config = await discover(t.idp.issuer, t.idp.consoleClient.clientId, secret, fetch);
    const user = t.idp.users.find((u) => u.role === role)!;
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    const authorizationUrl = oidc.buildAuthorizationUrl(config, {
      redirect_uri: CONSOLE_REDIRECT_URI,
      scope: "openid profile",
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: "S256",
      state,
      nonce,
    });
    const callback = await completeSignIn({ authorizationUrl, redirectUri: CONSOLE_REDIRECT_URI, fetch, username: user.username, password: user.password });
    const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
    return { config, tokens, user };
  }

  const verify = (token: string) =>
    createAdminTokenVerifier({ issuer: t.idp.issuer, audience: t.idp.audience, jwks: new URL(t.idp.jwksUrl), jwksCaPem: t.caPem }).verify(token);

  it("gets an access token, an ID token with name and roles, and a refresh token that rotates on use", async () => {
    const { config, tokens, user } = await consoleSignIn("super_admin");
    expect(tokens.claims()).toMatchObject({ iss: t.idp.issuer, aud: "lcp-console", sub: "super_admin", name: user.name, roles: ["super_admin"] });
    expect(await verify(tokens.access_token)).toMatchObject({ ok: true, subject: "super_admin", roles: ["super_admin"] });
    const { iat, exp } = decodeJwt(tokens.access_token);
    expect(exp! - iat!).toBe(30);
    expect(tokens.refresh_token).toBeTruthy();

    const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!);
    expect(refreshed.refresh_token).toBeTruthy();
    expect(refreshed.refresh_token).not.toBe(tokens.refresh_token);
    expect(decodeJwt(refreshed.access_token).jti).not.toBe(decodeJwt(tokens.access_token).jti);
    expect(await verify(refreshed.access_token)).toMatchObject({ ok: true, subject: "super_admin", roles: ["super_admin"] });

    // The rotated-out token is spent; and presenting it again is treated as theft: the grant ends.
    await expect(oidc.refreshTokenGrant(config, tokens.refresh_token!)).rejects.toMatchObject({ error: "invalid_grant" });
    await expect(oidc.refreshTokenGrant(config, refreshed.refresh_token!)).rejects.toMatchObject({ error: "invalid_grant" });
  });

  it("cannot refresh any more after revokeUser, while another user's refresh token keeps working", async () => {
    const support = await consoleSignIn("support");
    const auditor = await consoleSignIn("auditor");
    const once = await oidc.refreshTokenGrant(support.config, support.tokens.refresh_token!);

    await t.idp.revokeUser("support");
    await expect(oidc.refreshTokenGrant(support.config, once.refresh_token!)).rejects.toMatchObject({ error: "invalid_grant" });
    const still = await oidc.refreshTokenGrant(auditor.config, auditor.tokens.refresh_token!);
    expect(await verify(still.access_token)).toMatchObject({ ok: true, subject: "auditor" });

    // The user can sign in again afterwards (a new session, a new grant).
    const again = await consoleSignIn("support");
    expect(await verify(again.tokens.access_token)).toMatchObject({ ok: true, subject: "support" });
    await expect(t.idp.revokeUser("nobody")).rejects.toThrow(/no dev user/);
  });

  it("refuses the code exchange with a wrong client secret, and gives the CLI client no refresh token", async () => {
    await expect(consoleSignIn("support", "not-the-secret-0123456789abcdefghijklmnop")).rejects.toMatchObject({ error: "invalid_client" });

    const fetch = createTrustingFetch({ caPem: t.caPem });
    const cli = await discover(t.idp.issuer, t.idp.cliClient.clientId, undefined, fetch);
    const verifier = oidc.randomPKCECodeVerifier();
    const authorizationUrl = oidc.buildAuthorizationUrl(cli, {
      redirect_uri: t.idp.cliClient.redirectUri,
      scope: "openid offline_access",
      prompt: "consent",
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: "S256",
    });
    const support = t.idp.users.find((u) => u.role === "support")!;
    const callback = await completeSignIn({ authorizationUrl, redirectUri: t.idp.cliClient.redirectUri, fetch, username: support.username, password: support.password });
    const tokens = await oidc.authorizationCodeGrant(cli, callback, { pkceCodeVerifier: verifier });
    expect(await verify(tokens.access_token)).toMatchObject({ ok: true, subject: "support" });
    expect(tokens.refresh_token).toBeUndefined();
  });
});
