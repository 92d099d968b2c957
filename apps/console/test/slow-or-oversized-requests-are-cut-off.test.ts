import { createSecureServer, type IncomingHttpHeaders } from "node:http2";
import { request } from "node:https";
import type { AddressInfo } from "node:net";
import { connect } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestBrowser } from "./support/browser.js";
import { connectHeaders, startConsoleUnderTest, type ConsoleUnderTest } from "./support/console.js";

describe("slow and oversized requests", () => {
  let t: ConsoleUnderTest;
  let cookie: string;
  let csrf: string;
  beforeAll(async () => {
    t = await startConsoleUnderTest({ config: { requestTimeoutMs: 1_000 } });
    const browser = createTestBrowser(t.pki.ca.certPem);
    await browser.signIn(t.app.url, "sam");
    cookie = `__Host-lcp_session=${browser.cookie(t.app.url, "__Host-lcp_session")}`;
    csrf = (JSON.parse((await browser.request(`${t.app.url}/auth/session`)).body) as { csrfToken: string }).csrfToken;
  });
  afterAll(async () => {
    await t?.close();
  });

  it("a body that trickles in is cut off at the request timeout (408), not held open", async () => {
    const started = Date.now();
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect({ host: "127.0.0.1", port: t.app.port, servername: "localhost", ca: t.pki.ca.certPem }, () => {
        socket.write(
          `POST /api/audit.v1.AuditService/ListEvents HTTP/1.1\r\nhost: localhost\r\ncookie: ${cookie}\r\nx-csrf-token: ${csrf}\r\n` +
            `content-type: application/json\r\ncontent-length: 1000\r\n\r\n{"ac`,
        );
        // One byte a while, far slower than the whole request may take.
        drip = setInterval(() => socket.writable && socket.write(" "), 200);
      });
      let drip: NodeJS.Timeout | undefined;
      let text = "";
      socket.on("data", (chunk: Buffer) => (text += chunk.toString()));
      socket.on("close", () => {
        clearInterval(drip);
        resolve(text);
      });
      socket.on("error", (err) => {
        clearInterval(drip);
        if (text) resolve(text);
        else reject(err);
      });
    });
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("headers that trickle in are cut off too", async () => {
    const started = Date.now();
    const closed = await new Promise<string>((resolve) => {
      const socket = connect({ host: "127.0.0.1", port: t.app.port, servername: "localhost", ca: t.pki.ca.certPem }, () => {
        socket.write("GET /licensing HTTP/1.1\r\nhost: localhost\r\n");
        drip = setInterval(() => socket.writable && socket.write("x-slow: 1\r\n"), 200);
      });
      let drip: NodeJS.Timeout | undefined;
      let text = "";
      socket.on("data", (chunk: Buffer) => (text += chunk.toString()));
      socket.on("close", () => {
        clearInterval(drip);
        resolve(text);
      });
      socket.on("error", () => undefined);
    });
    expect(closed).toMatch(/^HTTP\/1\.1 408 /);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("a chunked body that grows past 1 MiB is refused with 413 as soon as it does", async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(
        `${t.app.url}/api/audit.v1.AuditService/ListEvents`,
        { method: "POST", ca: t.pki.ca.certPem, headers: { cookie, "x-csrf-token": csrf, "content-type": "application/json" } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on("error", reject);
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      // Keeps sending until the answer arrives (or well past the limit).
      let sent = 0;
      const pump = () => {
        while (sent < 4 * 1024 * 1024 && !req.destroyed) {
          sent += chunk.length;
          if (!req.write(chunk)) return void req.once("drain", pump);
        }
        req.end();
      };
      pump();
    });
    expect(status).toBe(413);
  });
});

describe("a service that never answers", () => {
  let t: ConsoleUnderTest;
  const seen: IncomingHttpHeaders[] = [];
  let close: () => Promise<void> = async () => undefined;
  beforeAll(async () => {
    t = await startConsoleUnderTest({
      config: { upstreamTimeoutMs: 500 },
      beforeConsole: async (_idp, pki) => {
        const cert = await pki.service("audit");
        // Takes every call and never answers.
        const silent = createSecureServer({ cert: cert.certPem, key: cert.keyPem }, (req) => void seen.push(req.headers));
        await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
        close = () => new Promise<void>((resolve) => silent.close(() => resolve()));
        return { audit: `https://localhost:${(silent.address() as AddressInfo).port}` };
      },
    });
  });
  afterAll(async () => {
    await t?.close();
    await close();
  });

  it("is cut off at the deadline with 504 deadline_exceeded, and saw the bearer token but never the cookie or CSRF token", async () => {
    const browser = createTestBrowser(t.pki.ca.certPem);
    await browser.signIn(t.app.url, "sam");
    const csrf = (JSON.parse((await browser.request(`${t.app.url}/auth/session`)).body) as { csrfToken: string }).csrfToken;
    const started = Date.now();
    const answer = await browser.request(`${t.app.url}/api/audit.v1.AuditService/ListEvents`, {
      method: "POST",
      headers: connectHeaders(csrf, { "connect-timeout-ms": "600000", "x-forwarded-for": "1.2.3.4", authorization: "Bearer forged" }),
      body: "{}",
    });
    expect(answer.status).toBe(504);
    expect(JSON.parse(answer.body)).toMatchObject({ code: "deadline_exceeded" });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(seen).toHaveLength(1);
    const headers = seen[0]!;
    expect(headers[":path"]).toBe("/audit.v1.AuditService/ListEvents");
    expect(headers["connect-timeout-ms"]).toBe("500");
    expect(headers.authorization).toMatch(/^Bearer ey/);
    expect(t.idp.issuedTokens).toContain(headers.authorization!.slice("Bearer ".length));
    expect(headers.cookie).toBeUndefined();
    expect(headers["x-csrf-token"]).toBeUndefined();
    expect(headers["x-forwarded-for"]).toBeUndefined();
  });
});
