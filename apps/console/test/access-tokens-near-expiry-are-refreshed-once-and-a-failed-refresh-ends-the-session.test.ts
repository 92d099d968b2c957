import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createTestBrowser, type TestBrowser } from "./support/browser.js";
import { connectHeaders, startAuditTrusting, startConsoleUnderTest, type AuditUnderTest, type ConsoleUnderTest } from "./support/console.js";

const LIST_EVENTS = "/api/audit.v1.AuditService/ListEvents";

describe("token refresh", () => {
  let t: ConsoleUnderTest;
  let audit: AuditUnderTest;
  beforeAll(async () => {
    t = await startConsoleUnderTest({
      beforeConsole: async (idp, pki) => {
        audit = await startAuditTrusting(idp, pki);
        return { audit: audit.url };
      },
    });
  });
  afterAll(async () => {
    await t?.close();
    await audit?.close();
  });
  afterEach(() => {
    t.idp.accessTokenTtlSeconds = 600;
    t.idp.issueRefreshTokens = true;
    t.idp.refuseTokenRequests = false;
    t.idp.tokenDelayMs = 0;
  });

  const signIn = async (user = "sam"): Promise<{ browser: TestBrowser; csrf: string }> => {
    const browser = createTestBrowser(t.pki.ca.certPem);
    await browser.signIn(t.app.url, user);
    const csrf = (JSON.parse((await browser.request(`${t.app.url}/auth/session`)).body) as { csrfToken: string }).csrfToken;
    return { browser, csrf };
  };
  const call = (s: { browser: TestBrowser; csrf: string }) =>
    s.browser.request(`${t.app.url}${LIST_EVENTS}`, { method: "POST", headers: connectHeaders(s.csrf), body: "{}" });
  const refreshes = () => t.idp.grants.refresh_token ?? 0;

  it("a token with plenty of time left is used as it is", async () => {
    const s = await signIn();
    const before = refreshes();
    expect((await call(s)).status).toBe(200);
    expect(refreshes()).toBe(before);
  });

  it("an access token expiring within 30 s is refreshed before the call, which the service accepts; concurrent calls share one refresh", async () => {
    t.idp.accessTokenTtlSeconds = 40;
    const s = await signIn();
    const before = refreshes();
    expect((await call(s)).status).toBe(200);
    expect(refreshes()).toBe(before);
    // 25 s left: due. Five calls at once make one refresh, and each goes out with the new token.
    t.advance(15_000);
    // A slow token endpoint, so every call arrives while the refresh is under way.
    t.idp.tokenDelayMs = 300;
    const answers = await Promise.all(Array.from({ length: 5 }, () => call(s)));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200]);
    expect(refreshes()).toBe(before + 1);
    t.idp.tokenDelayMs = 0;
    // The refreshed token is good for 40 s again.
    expect((await call(s)).status).toBe(200);
    expect(refreshes()).toBe(before + 1);
    t.advance(15_000);
    expect((await call(s)).status).toBe(200);
    expect(refreshes()).toBe(before + 2);
  });

  it("a refresh the issuer refuses ends the session: the call answers 401 and the session is gone", async () => {
    t.idp.accessTokenTtlSeconds = 20;
    const s = await signIn();
    t.idp.refuseTokenRequests = true;
    const answer = await call(s);
    expect(answer.status).toBe(401);
    expect(JSON.parse(answer.body)).toEqual({ code: "unauthenticated", message: "session ended: sign in again" });
    t.idp.refuseTokenRequests = false;
    // Ended, not just refused once: a working issuer does not bring it back.
    expect((await s.browser.request(`${t.app.url}/auth/session`, { headers: { cookie: `__Host-lcp_session=${s.browser.cookie(t.app.url, "__Host-lcp_session") ?? "gone"}` } })).status).toBe(401);
    expect(s.browser.cookie(t.app.url, "__Host-lcp_session")).toBeUndefined();
    expect(t.logs()).toContain("session ended: token refresh refused");
  });

  it("without a refresh token, an expiring access token ends the session", async () => {
    t.idp.accessTokenTtlSeconds = 20;
    t.idp.issueRefreshTokens = false;
    const browser = createTestBrowser(t.pki.ca.certPem);
    const { final } = await browser.signIn(t.app.url, "ada");
    expect(final.status).toBe(200);
    const info = await browser.request(`${t.app.url}/auth/session`);
    expect(info.status).toBe(401);
    expect(JSON.parse(info.body)).toEqual({ error: "unauthenticated", message: "session ended: sign in again" });
    expect((await browser.request(`${t.app.url}/licensing`)).status).toBe(302);
    expect(t.logs()).toContain("no refresh token");
  });

  it("/auth/session refreshes a due token too, so a 200 there means the next call is authorised", async () => {
    t.idp.accessTokenTtlSeconds = 20;
    const s = await signIn();
    const before = refreshes();
    expect((await s.browser.request(`${t.app.url}/auth/session`)).status).toBe(200);
    expect(refreshes()).toBe(before + 1);
    t.idp.refuseTokenRequests = true;
    const ended = await s.browser.request(`${t.app.url}/auth/session`);
    expect(ended.status).toBe(401);
    expect(JSON.parse(ended.body)).toEqual({ error: "unauthenticated", message: "session ended: sign in again" });
  });
});
