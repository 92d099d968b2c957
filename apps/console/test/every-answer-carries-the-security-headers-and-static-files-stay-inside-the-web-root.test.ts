import { writeFile } from "node:fs/promises";
import { request as httpsRequest } from "node:https";
import { join } from "node:path";
import { connect } from "node:tls";
import { brotliDecompressSync, gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ASSET_JS, connectHeaders, startConsoleUnderTest, type ConsoleUnderTest } from "./support/console.js";

/** Sends a raw request line (no client-side path normalisation) and returns status and headers. */
function rawRequest(t: ConsoleUnderTest, target: string): Promise<{ status: number; head: string; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port: t.app.port, servername: "localhost", ca: t.pki.ca.certPem }, () => {
      socket.write(`GET ${target} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n`);
    });
    let text = "";
    socket.on("data", (chunk: Buffer) => (text += chunk.toString()));
    socket.on("end", () => {
      const [head = "", body = ""] = text.split("\r\n\r\n");
      resolve({ status: Number(head.split(" ")[1]), head: head.toLowerCase(), body });
    });
    socket.on("error", reject);
  });
}

describe("security headers and the built web app", () => {
  let t: ConsoleUnderTest;
  beforeAll(async () => {
    t = await startConsoleUnderTest();
  });
  afterAll(async () => {
    await t?.close();
  });

  it("every answer carries the CSP and the other security headers; script-src allows no inline script", async () => {
    const answers = [
      await t.browser.request(`${t.app.url}/`),
      await t.browser.request(`${t.app.url}/licensing/x`),
      await t.browser.request(`${t.app.url}/assets/x.js`),
      await t.browser.request(`${t.app.url}/no/such/page`),
      await t.browser.request(`${t.app.url}/auth/session`),
      await t.browser.request(`${t.app.url}/auth/signed-out`),
      await t.browser.request(`${t.app.url}/api/audit.v1.AuditService/ListEvents`, { method: "POST", headers: connectHeaders("x"), body: "{}" }),
      await t.browser.request(`${t.app.url}/auth/login`, { anonymous: true }),
    ];
    for (const answer of answers) {
      const csp = answer.headers["content-security-policy"] as string;
      expect(csp, answer.url).toBe(
        `default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self' ${t.idp.issuer}`,
      );
      const scriptSrc = csp.split("; ").find((d) => d.startsWith("script-src"))!;
      expect(scriptSrc).not.toContain("unsafe-inline");
      expect(scriptSrc).not.toContain("unsafe-eval");
      expect(answer.headers["strict-transport-security"]).toMatch(/^max-age=\d+/);
      expect(answer.headers["x-content-type-options"]).toBe("nosniff");
      expect(answer.headers["referrer-policy"]).toBe("no-referrer");
      expect(answer.headers["cross-origin-opener-policy"]).toBe("same-origin");
      expect(answer.headers["x-frame-options"]).toBe("DENY");
    }
  });

  it("serves assets with their content type, immutable caching, and HEAD", async () => {
    const js = await t.browser.request(`${t.app.url}/assets/x.js`);
    expect(js.status).toBe(200);
    expect(js.body).toBe(ASSET_JS);
    expect(js.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    expect(js.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
    const head = await t.browser.request(`${t.app.url}/assets/x.js`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers["content-length"]).toBe(String(Buffer.byteLength(ASSET_JS)));
    expect(head.body).toBe("");
  });

  it("sends text assets brotli- or gzip-compressed as the browser accepts, identical once decoded, and plain to a client that accepts neither", async () => {
    const big = `${"export const line = 'the operator console';\n".repeat(2_000)}`;
    await writeFile(join(t.webRoot, "assets", "big.js"), big);
    const fetchAs = (acceptEncoding: string | undefined) =>
      new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }>((resolve, reject) => {
        const req = httpsRequest(`${t.app.url}/assets/big.js`, { ca: t.pki.ca.certPem, agent: false, headers: acceptEncoding ? { "accept-encoding": acceptEncoding } : {} }, (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        });
        req.on("error", reject);
        req.end();
      });
    const br = await fetchAs("gzip, deflate, br");
    expect(br.headers["content-encoding"]).toBe("br");
    expect(br.headers.vary).toBe("accept-encoding");
    expect(Number(br.headers["content-length"])).toBe(br.body.length);
    expect(br.body.length).toBeLessThan(big.length / 10);
    expect(brotliDecompressSync(br.body).toString()).toBe(big);
    const gz = await fetchAs("gzip;q=1, br;q=0");
    expect(gz.headers["content-encoding"]).toBe("gzip");
    expect(gunzipSync(gz.body).toString()).toBe(big);
    const plain = await fetchAs(undefined);
    expect(plain.headers["content-encoding"]).toBeUndefined();
    expect(plain.body.toString()).toBe(big);
    // A small file is not worth it.
    expect((await fetchAs("br")).status).toBe(200);
    const small = await t.browser.request(`${t.app.url}/assets/x.js`, { headers: { "accept-encoding": "br" } });
    expect(small.headers["content-encoding"]).toBeUndefined();
  });

  it("refuses paths that climb out of assets/, dotfiles, directories and anything beside assets/", async () => {
    // The raw request line reaches the server as written (the control: a real asset).
    expect((await rawRequest(t, "/assets/x.js")).status).toBe(200);
    for (const target of [
      "/assets/../secret.txt",
      "/assets/../../outside.txt",
      "/assets/%2e%2e/secret.txt",
      "/assets/%2e%2e%2fsecret.txt",
      "/assets/..%2f..%2foutside.txt",
      "/assets/%2e%2e%5csecret.txt",
      "/assets/.%2e/secret.txt",
      "/assets/x.js%00.png",
      "/assets/",
      "/assets//x.js",
      "/assets/./x.js",
      "/assets/.hidden",
      "/assets/%E0%A4%A",
      "/secret.txt",
      "/index.html",
      "/outside.txt",
    ]) {
      const answer = await rawRequest(t, target);
      expect(answer.status, target).toBe(404);
      expect(answer.body, target).not.toContain("not an asset");
      expect(answer.body, target).not.toContain("outside the web root");
      expect(answer.head, target).toContain("x-content-type-options: nosniff");
    }
  });

  it("headers beyond 16 KiB are refused with 431, with the security headers", async () => {
    const answer = await t.browser.request(`${t.app.url}/licensing`, { headers: { cookie: `a=${"x".repeat(20_000)}` }, anonymous: true });
    expect(answer.status).toBe(431);
    expect(answer.headers["x-frame-options"]).toBe("DENY");
  });
});

describe("a console whose web app is not built", () => {
  let t: ConsoleUnderTest;
  beforeAll(async () => {
    t = await startConsoleUnderTest({ unbuilt: true });
  });
  afterAll(async () => {
    await t?.close();
  });

  it("answers the screens with 503 and a sentence saying how to build it", async () => {
    const answer = await t.browser.request(`${t.app.url}/licensing`);
    expect(answer.status).toBe(503);
    expect(answer.body).toContain("npm run build -w @lcp/console");
    // Sign-in itself still works.
    expect((await t.browser.request(`${t.app.url}/auth/login`)).status).toBe(302);
  });
});
