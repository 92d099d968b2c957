import { request } from "node:https";
import { connect } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestBrowser } from "./support/browser.js";
import { startConsoleUnderTest, type ConsoleUnderTest } from "./support/console.js";

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
      });
      // One byte a while, far slower than the whole request may take.
      const drip = setInterval(() => socket.writable && socket.write(" "), 200);
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
      });
      const drip = setInterval(() => socket.writable && socket.write("x-slow: 1\r\n"), 200);
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
