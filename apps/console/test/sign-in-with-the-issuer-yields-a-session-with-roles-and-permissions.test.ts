import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { INDEX_HTML, startConsoleUnderTest, type ConsoleUnderTest } from "./support/console.js";

describe("signing in with the OIDC issuer (authorization code + PKCE)", () => {
  let t: ConsoleUnderTest;
  beforeAll(async () => {
    t = await startConsoleUnderTest();
  });
  afterAll(async () => {
    await t?.close();
  });

  it("sends the browser to the issuer with PKCE S256, state and nonce, and keeps the pending sign-in behind a short-lived cookie", async () => {
    const start = await t.browser.request(`${t.app.url}/auth/login?return=${encodeURIComponent("/licensing/heartbeats?x=1")}`, { anonymous: true });
    expect(start.status).toBe(302);
    const to = new URL(start.location!);
    expect(to.origin).toBe(t.idp.issuer);
    expect(to.searchParams.get("response_type")).toBe("code");
    expect(to.searchParams.get("client_id")).toBe("lcp-console");
    expect(to.searchParams.get("redirect_uri")).toBe(`${t.app.publicUrl}/auth/callback`);
    expect(to.searchParams.get("code_challenge_method")).toBe("S256");
    expect(to.searchParams.get("code_challenge")).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(to.searchParams.get("state")).toBeTruthy();
    expect(to.searchParams.get("nonce")).toBeTruthy();
    expect(to.searchParams.get("scope")).toBe("openid profile");
    const login = start.setCookies.find((c) => c.startsWith("__Host-lcp_login="))!;
    expect(login).toMatch(/; HttpOnly; Secure; SameSite=Lax; Path=\/; Max-Age=600$/);
  });

  it("comes back to the page asked for, with an HttpOnly session cookie, and /auth/session shows roles and permissions", async () => {
    const { callback, final } = await t.browser.signIn(t.app.url, "sam", "/licensing/heartbeats?deployment=d-1");
    expect(callback.status).toBe(302);
    expect(callback.location).toBe(`${t.app.url}/licensing/heartbeats?deployment=d-1`);
    const session = callback.setCookies.find((c) => c.startsWith("__Host-lcp_session="))!;
    expect(session).toMatch(/^__Host-lcp_session=[A-Za-z0-9_-]{43}; HttpOnly; Secure; SameSite=Lax; Path=\/$/);
    // The pending sign-in is single use: its cookie is cleared.
    expect(callback.setCookies.some((c) => /^__Host-lcp_login=; .*Max-Age=0/.test(c))).toBe(true);
    expect(final.status).toBe(200);
    expect(final.body).toBe(INDEX_HTML);
    // The same callback again (back button): the code is spent, the browser is signed in already.
    const replayed = await t.browser.request(callback.url);
    expect(replayed.status).toBe(302);
    expect(replayed.location).toBe(`${t.app.url}/licensing`);

    const info = await t.browser.request(`${t.app.url}/auth/session`);
    expect(info.status).toBe(200);
    expect(info.headers["cache-control"]).toBe("no-store");
    const body = JSON.parse(info.body) as Record<string, unknown>;
    expect(body).toEqual({
      subject: "sam",
      name: "Sam Support",
      roles: ["support"],
      permissions: ["license.read", "license.issue", "license.revoke", "subscription.manage", "heartbeat.read", "directive.send", "audit.read", "fleet.sweep"],
      csrfToken: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      expiresAt: expect.any(String),
    });
    const expiresAt = Date.parse(body.expiresAt as string);
    expect(expiresAt - Date.now()).toBeGreaterThan(29 * 60_000);
    expect(expiresAt - Date.now()).toBeLessThanOrEqual(30 * 60_000);
    // Tokens stay on the server.
    for (const token of t.idp.issuedTokens) expect(info.body).not.toContain(token);
    expect(t.idp.grants.authorization_code).toBeGreaterThanOrEqual(1);
  });

  it("a read-only role gets only its permissions", async () => {
    const browser = (await import("./support/browser.js")).createTestBrowser(t.pki.ca.certPem);
    await browser.signIn(t.app.url, "ada");
    const info = JSON.parse((await browser.request(`${t.app.url}/auth/session`)).body) as { roles: string[]; permissions: string[] };
    expect(info.roles).toEqual(["auditor"]);
    expect(info.permissions).toEqual(["license.read", "heartbeat.read", "audit.read"]);
  });

  it("a return path that leaves the console's screens is replaced by /licensing", async () => {
    for (const bad of ["https://evil.example/licensing", "//evil.example/licensing", "/auth/session", "/licensing/../auth/logout", "/licensing\\..\\x", "/licensingfoo"]) {
      const browser = (await import("./support/browser.js")).createTestBrowser(t.pki.ca.certPem);
      const { callback } = await browser.signIn(t.app.url, "sam", bad);
      expect(callback.location, bad).toBe(`${t.app.url}/licensing`);
    }
  });

  it("a callback without its pending sign-in, or with the issuer's error, ends on a page with a way to sign in again", async () => {
    const forged = await t.browser.request(`${t.app.url}/auth/callback?code=abc&state=def`, { anonymous: true });
    expect(forged.status).toBe(400);
    expect(forged.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(forged.body).toContain('href="/auth/login?return=%2Flicensing"');
    expect(forged.body).toContain("Sign in again");
    expect(forged.body).not.toMatch(/at .*\.ts|Error:/);

    const refused = await t.browser.request(`${t.app.url}/auth/callback?error=access_denied&error_description=%3Cscript%3E`, { anonymous: true });
    expect(refused.status).toBe(400);
    expect(refused.body).toContain("access_denied");
    expect(refused.body).not.toContain("<script>");
  });

  it("a tampered code or state is refused without a session", async () => {
    const browser = (await import("./support/browser.js")).createTestBrowser(t.pki.ca.certPem);
    const start = await browser.request(`${t.app.url}/auth/login`);
    const page = await browser.follow(start);
    const action = /<form[^>]*action="([^"]+)"/.exec(page.body)![1]!;
    let current = await browser.request(new URL(action, page.url).href, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "login=sam",
    });
    while (current.location && !current.location.startsWith(`${t.app.url}/auth/callback`)) current = await browser.request(current.location);
    const callbackUrl = new URL(current.location!);
    callbackUrl.searchParams.set("state", "not-the-state");
    const answer = await browser.request(callbackUrl.href);
    expect(answer.status).toBe(400);
    expect(answer.body).toContain("Sign-in failed");
    expect(browser.cookie(t.app.url, "__Host-lcp_session")).toBeUndefined();
  });
});

describe("signing in while the issuer cannot be reached", () => {
  let t: ConsoleUnderTest;
  beforeAll(async () => {
    t = await startConsoleUnderTest({
      config: { oidc: { issuer: "https://localhost:9", clientId: "lcp-console", clientSecret: { value: "x" }, scopes: "openid profile", rolesClaim: "roles" } },
    });
  });
  afterAll(async () => {
    await t?.close();
  });

  it("answers a page saying so, with a link to try again that keeps the return path", async () => {
    const answer = await t.browser.request(`${t.app.url}/auth/login?return=%2Flicensing%2Fsigning`);
    expect(answer.status).toBe(503);
    expect(answer.body).toContain("Sign-in is unavailable");
    expect(answer.body).toContain('href="/auth/login?return=%2Flicensing%2Fsigning"');
    // The screens still send the browser to sign in; nothing else breaks.
    expect((await t.browser.request(`${t.app.url}/licensing`)).status).toBe(302);
  });
});
