/**
 * Two console replicas behind a balancer without sticky sessions, on one database (SQLite file,
 * and PostgreSQL when DATABASE_URL is set): any replica serves any request of a browser, a
 * sign-in may finish on the other replica but only once, nothing in the database yields a cookie
 * or a token, a replica with the wrong SESSION_KEY signs browsers out rather than failing, the
 * tables stay bounded under floods, and readiness follows the database.
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { rawQuery, testDatabases, type TestDatabaseOptions } from "@lcp/testing/db";
import { createTestPki, type TestPki } from "@lcp/testing/pki";
import { createTcpProxy, type TcpProxy } from "@lcp/testing/tcp-proxy";
import { waitFor } from "@lcp/testing/wait";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ConsoleConfig } from "../src/config.js";
import { startTestBalancer, type TestBalancer } from "./support/balancer.js";
import { createTestBrowser, type TestBrowser } from "./support/browser.js";
import { connectHeaders, startAuditTrusting, startConsoleUnderTest, type AuditUnderTest, type ConsoleUnderTest } from "./support/console.js";
import { startTestIdp, type TestIdp } from "./support/test-idp.js";

const SESSION = "__Host-lcp_session";
const LOGIN = "__Host-lcp_login";
const MAX_SESSIONS = 4;
const MAX_PENDING_LOGINS = 6;

describe.each(testDatabases())("two console replicas behind a balancer on one database ($name)", (tdb) => {
  let pki: TestPki;
  let idp: TestIdp;
  let audit: AuditUnderTest;
  let db: TestDatabaseOptions;
  let proxy: TcpProxy | undefined;
  let lb: TestBalancer;
  let a: ConsoleUnderTest;
  let b: ConsoleUnderTest;
  const sessionKey = new Uint8Array(randomBytes(32));

  const replica = (config: Partial<ConsoleConfig> = {}) =>
    startConsoleUnderTest({
      shared: { idp, pki },
      upstreams: { audit: audit.url },
      config: {
        publicUrl: lb.url,
        dataDir: db.dataDir,
        databaseUrl: db.databaseUrl === undefined ? undefined : proxy!.rewrite(db.databaseUrl),
        databaseSchema: db.schema,
        sessionKey: { kind: "configured", key: sessionKey },
        maxSessions: MAX_SESSIONS,
        maxPendingLogins: MAX_PENDING_LOGINS,
        adminPort: 0,
        readinessIntervalMs: 100,
        ...config,
      },
    });

  beforeAll(async () => {
    pki = await createTestPki();
    idp = await startTestIdp(pki);
    audit = await startAuditTrusting(idp, pki);
    db = tdb.options("console");
    if (db.databaseUrl !== undefined) {
      const url = new URL(db.databaseUrl);
      proxy = await createTcpProxy({ target: { host: url.hostname, port: Number(url.port || 5432) } });
    }
    lb = await startTestBalancer();
    a = await replica();
    b = await replica();
    lb.add("a", a.app.port);
    lb.add("b", b.app.port);
    await idp.registerConsole(lb.url);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await lb?.close();
    await audit?.close();
    await idp?.close();
    await proxy?.close();
    await db?.cleanup();
  });

  const session = async (browser: TestBrowser) => {
    const answer = await browser.request(`${lb.url}/auth/session`);
    return { status: answer.status, answer, body: JSON.parse(answer.body) as { csrfToken: string; subject: string } };
  };
  const listEvents = (browser: TestBrowser, csrf: string) =>
    browser.request(`${lb.url}/api/audit.v1.AuditService/ListEvents`, { method: "POST", headers: connectHeaders(csrf, { origin: lb.url }), body: "{}" });
  const signedInVia = async (replicaName: string, user = "sam") => {
    const browser = createTestBrowser(pki.ca.certPem);
    lb.to(replicaName);
    const { callback } = await browser.signIn(lb.url, user);
    expect(callback.status).toBe(302);
    return { browser, cookie: browser.cookie(lb.url, SESSION)! };
  };

  it("a browser signed in through A is served by B, /api included, and signing out on B ends the session on A", async () => {
    const servedB = lb.served.b!;
    const { browser, cookie } = await signedInVia("a");
    expect(lb.served.b).toBe(servedB);

    lb.to("b");
    const info = await session(browser);
    expect(info.status).toBe(200);
    expect(info.body.subject).toBe("sam");
    const call = await listEvents(browser, info.body.csrfToken);
    expect(call.status, call.body).toBe(200);
    expect(call.headers["content-type"]).toMatch(/^application\/json/);
    expect(lb.served.b).toBe(servedB + 2);

    const out = await browser.request(`${lb.url}/auth/logout`, { method: "POST", headers: { "x-csrf-token": info.body.csrfToken, origin: lb.url } });
    expect(out.status).toBe(200);
    // The old cookie, replayed on A: the session is gone there too.
    lb.to("a");
    browser.setCookie(lb.url, SESSION, cookie);
    expect((await session(browser)).status).toBe(401);
    browser.setCookie(lb.url, SESSION, cookie);
    expect((await listEvents(browser, info.body.csrfToken)).status).toBe(401);
  });

  it("a sign-in started on A completes on B, once: its callback replayed on A is refused", async () => {
    const browser = createTestBrowser(pki.ca.certPem);
    lb.to("b");
    lb.next("a");
    const servedA = lb.served.a!;
    const { callbackUrl, loginCookie } = await browser.beginSignIn(lb.url, "olga", "/licensing/settings");
    expect(lb.served.a).toBe(servedA + 1);
    const callback = await browser.request(callbackUrl);
    expect(callback.status).toBe(302);
    expect(callback.location).toBe(`${lb.url}/licensing/settings`);
    expect(lb.served.a).toBe(servedA + 1);
    expect((await session(browser)).body.subject).toBe("olga");

    const thief = createTestBrowser(pki.ca.certPem);
    thief.setCookie(lb.url, LOGIN, loginCookie);
    lb.to("a");
    const replayed = await thief.request(callbackUrl);
    expect(replayed.status).toBe(400);
    expect(replayed.body).toContain("Sign-in expired");
    expect(replayed.setCookies.some((c) => c.startsWith(`${SESSION}=`) && !c.includes("Max-Age=0"))).toBe(false);
  });

  it("of two callbacks of one sign-in racing on A and B, exactly one goes on to the issuer", async () => {
    const browser = createTestBrowser(pki.ca.certPem);
    lb.to("a");
    const { callbackUrl, loginCookie } = await browser.beginSignIn(lb.url, "sam");
    const thief = createTestBrowser(pki.ca.certPem);
    thief.setCookie(lb.url, LOGIN, loginCookie);
    const exchanges = idp.grants.authorization_code ?? 0;
    lb.next("a", "b");
    const answers = await Promise.all([browser.request(callbackUrl), thief.request(callbackUrl)]);
    expect(answers.map((x) => x.status).sort()).toEqual([302, 400]);
    expect(answers.find((x) => x.status === 400)!.body).toContain("Sign-in expired");
    // The loser never reached the token endpoint: the database, not the issuer, refused it.
    expect(idp.grants.authorization_code).toBe(exchanges + 1);
  });

  it("calls on A and B while the access token is due, or already expired, make one refresh between them, and all go out", async () => {
    idp.accessTokenTtlSeconds = 40;
    try {
      const { browser } = await signedInVia("a");
      const { csrfToken } = (await session(browser)).body;
      const refreshes = () => idp.grants.refresh_token ?? 0;
      const before = refreshes();
      // A slow token endpoint, so the calls on both replicas arrive while the refresh runs.
      idp.tokenDelayMs = 300;
      for (const [step, expected] of [
        [15_000, before + 1], // 25 s left: due; the replica that did not claim the refresh still has a working token
        [45_000, before + 2], // expired on the console's clock: the other replica waits for the refresh
      ] as const) {
        a.advance(step);
        b.advance(step);
        lb.next("a", "b", "a", "b", "a", "b");
        const answers = await Promise.all(Array.from({ length: 6 }, () => listEvents(browser, csrfToken)));
        expect(answers.map((x) => x.status)).toEqual([200, 200, 200, 200, 200, 200]);
        expect(refreshes()).toBe(expected);
      }
    } finally {
      idp.accessTokenTtlSeconds = 600;
      idp.tokenDelayMs = 0;
    }
  });

  it("the database holds no session id, CSRF token, access or refresh token, state or nonce in the clear", async () => {
    const { browser, cookie } = await signedInVia("b", "root");
    const { csrfToken } = (await session(browser)).body;
    // A sign-in left waiting for its callback.
    const pending = await createTestBrowser(pki.ca.certPem).request(`${lb.url}/auth/login`);
    const authorize = new URL(pending.location!);
    const secrets = [cookie, csrfToken, authorize.searchParams.get("state")!, authorize.searchParams.get("nonce")!, ...idp.issuedTokens];
    expect(idp.issuedTokens.length).toBeGreaterThanOrEqual(2);

    let stored: string;
    if (db.databaseUrl === undefined) {
      // The file's bytes as written (the WAL holds the recent pages until a checkpoint).
      const file = join(db.dataDir, "console.sqlite");
      stored = (await Promise.all([file, `${file}-wal`].filter(existsSync).map((f) => readFile(f)))).map((bytes) => bytes.toString("latin1")).join("");
    } else {
      const rows = [...(await rawQuery(db, "select * from console_session")), ...(await rawQuery(db, "select * from console_pending_login"))];
      stored = JSON.stringify(rows);
    }
    // What is there: the hash of the cookie, so this looked in the right place.
    expect(stored).toContain(createHash("sha256").update(cookie).digest("hex"));
    for (const secret of secrets) {
      expect(secret.length).toBeGreaterThan(16);
      expect(stored).not.toContain(secret);
      // Nor a recognisable part of one (a JWT's payload, say).
      for (const part of secret.split(".").filter((p) => p.length > 16)) expect(stored).not.toContain(part);
    }
  });

  it("a replica with another SESSION_KEY treats the sessions as signed out (no 500) and leaves them to the others", async () => {
    const stranger = await replica({ sessionKey: { kind: "configured", key: new Uint8Array(randomBytes(32)) } });
    try {
      lb.add("c", stranger.app.port);
      const { browser, cookie } = await signedInVia("a");
      const { csrfToken } = (await session(browser)).body;
      lb.to("c");
      const info = await session(browser);
      expect(info.status).toBe(401);
      expect(info.answer.setCookies.some((c) => c.startsWith(`${SESSION}=;`))).toBe(true);
      browser.setCookie(lb.url, SESSION, cookie);
      expect((await listEvents(browser, csrfToken)).status).toBe(401);
      browser.setCookie(lb.url, SESSION, cookie);
      const screen = await browser.request(`${lb.url}/licensing`);
      expect(screen.status).toBe(302);
      expect(screen.location).toBe(`${lb.url}/auth/login?return=%2Flicensing`);
      expect(stranger.logs()).toContain("did not open with this SESSION_KEY");
      // A sign-in started elsewhere does not open here either.
      const other = createTestBrowser(pki.ca.certPem);
      lb.to("a");
      lb.next("a");
      const { callbackUrl } = await other.beginSignIn(lb.url, "sam");
      lb.to("c");
      expect((await other.request(callbackUrl)).status).toBe(400);
      // The replicas with the right key still serve the session.
      lb.to("b");
      browser.setCookie(lb.url, SESSION, cookie);
      expect((await session(browser)).status).toBe(200);
    } finally {
      lb.to("a");
      await stranger.close();
    }
  });

  it("floods of sign-ins and of started sign-ins leave both tables within their bounds; the newest sessions live", async () => {
    const browsers: TestBrowser[] = [];
    for (let i = 0; i < MAX_SESSIONS + 3; i++) browsers.push((await signedInVia(i % 2 === 0 ? "a" : "b")).browser);
    const count = async (table: string) => Number((await rawQuery<{ n: number | string }>(db, `select count(*) as n from ${table}`))[0]!.n);
    expect(await count("console_session")).toBeLessThanOrEqual(MAX_SESSIONS);
    for (const [i, browser] of browsers.entries()) {
      lb.to(i % 2 === 0 ? "b" : "a");
      expect((await session(browser)).status, `browser ${i}`).toBe(i < 3 ? 401 : 200);
    }

    for (let i = 0; i < 5 * MAX_PENDING_LOGINS; i++) {
      lb.to(i % 2 === 0 ? "a" : "b");
      expect((await createTestBrowser(pki.ca.certPem).request(`${lb.url}/auth/login`)).status).toBe(302);
    }
    expect(await count("console_pending_login")).toBeLessThanOrEqual(MAX_PENDING_LOGINS);
    // A real sign-in still goes through after the flood.
    await signedInVia("b", "ada");
  });

  it("/readyz (main port and ADMIN_PORT) says ready while the database answers", async () => {
    for (const replica of [a, b]) {
      const main = await createTestBrowser(pki.ca.certPem).request(`${replica.app.url}/readyz`);
      expect([main.status, main.body]).toEqual([200, "ready"]);
      const admin = await fetch(`http://127.0.0.1:${replica.app.adminPort}/readyz`);
      expect([admin.status, await admin.text()]).toEqual([200, "ready\n"]);
      expect((await fetch(`http://127.0.0.1:${replica.app.adminPort}/metrics`)).status).toBe(200);
    }
  });

  // Only PostgreSQL is reached over a connection that can be cut; SQLite has no such case to register.
  if (tdb.name === "postgresql") it("readiness goes 503 while the database is cut off, requests get 503 not 500, and both come back", async () => {
    const { browser } = await signedInVia("a");
    const adminReady = async (replica: ConsoleUnderTest) => (await fetch(`http://127.0.0.1:${replica.app.adminPort}/readyz`)).status;
    await proxy!.cut();
    try {
      await waitFor(async () => (await adminReady(a)) === 503 && (await adminReady(b)) === 503, "both replicas not ready");
      const main = await createTestBrowser(pki.ca.certPem).request(`${b.app.url}/readyz`);
      expect(main.status).toBe(503);
      expect(main.body).toMatch(/^not ready: database unreachable/);
      const refused = await browser.request(`${lb.url}/auth/session`);
      expect(refused.status).toBe(503);
      // Nothing was decided: the browser keeps its cookie.
      expect(refused.setCookies).toEqual([]);
    } finally {
      await proxy!.restore();
    }
    await waitFor(async () => (await adminReady(a)) === 200 && (await adminReady(b)) === 200, "both replicas ready again");
    lb.to("b");
    expect((await session(browser)).status).toBe(200);
  });
});
