import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { createTestPki, type TestPki } from "@lcp/testing/pki";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTrustingFetch, parseCertificateBundle } from "../src/index.js";

describe("createTrustingFetch", () => {
  let pki: TestPki;
  let server: Server;
  let base: string;
  const seen: Array<{ method: string; body: string; cookie: string | undefined }> = [];

  beforeAll(async () => {
    pki = await createTestPki();
    const cert = await pki.service("dev-idp");
    server = createServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString()));
      req.on("end", () => {
        seen.push({ method: req.method!, body, cookie: req.headers.cookie });
        if (req.url === "/redirect") {
          res.writeHead(303, { location: "/elsewhere", "set-cookie": ["a=1; Path=/", "b=2; Path=/x"] });
          res.end();
        } else if (req.url === "/huge") {
          res.end("x".repeat(64 * 1024));
        } else if (req.url === "/empty") {
          res.writeHead(204).end();
        } else {
          res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: [] }));
        }
      });
    });
    await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
    base = `https://localhost:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((done) => server.close(() => done())));

  it("trusts the given CA for a server it signed, in addition to the system roots", async () => {
    const res = await createTrustingFetch({ caPem: pki.ca.certPem })(`${base}/jwks`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ keys: [] });
    // Node's own fetch, with the system roots only, does not.
    await expect(fetch(`${base}/jwks`)).rejects.toThrow();
  });

  it("refuses a server whose certificate another CA signed, and plain http", async () => {
    await expect(createTrustingFetch({ caPem: pki.foreignCa.certPem })(`${base}/jwks`)).rejects.toThrow(/certificate/);
    await expect(createTrustingFetch({ caPem: pki.ca.certPem })(`http://localhost:1/jwks`)).rejects.toThrow("only https URLs can be fetched, not http:");
    // Without a CA of its own it trusts the system roots alone, which never signed this server.
    await expect(createTrustingFetch({})(`${base}/jwks`)).rejects.toThrow(/certificate/);
    expect(() => createTrustingFetch({ systemRoots: false })).toThrow("systemRoots: false needs caPem");
  });

  it("posts bodies, returns redirects with every Set-Cookie instead of following them, and answers 204 without a body", async () => {
    const go = createTrustingFetch({ caPem: pki.ca.certPem });
    const res = await go(`${base}/redirect`, { method: "POST", headers: { cookie: "s=1" }, body: new URLSearchParams({ username: "support" }) });
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/elsewhere");
    expect(res.headers.getSetCookie()).toEqual(["a=1; Path=/", "b=2; Path=/x"]);
    expect(seen.at(-1)).toEqual({ method: "POST", body: "username=support", cookie: "s=1" });
    expect((await go(`${base}/empty`)).status).toBe(204);
  });

  it("refuses an answer larger than its bound, and stops when the signal aborts", async () => {
    const go = createTrustingFetch({ caPem: pki.ca.certPem, maxResponseBytes: 1024 });
    await expect(go(`${base}/huge`)).rejects.toThrow("larger than 1024 bytes");
    await expect(go(`${base}/jwks`, { signal: AbortSignal.abort(new Error("gave up")) })).rejects.toThrow("gave up");
  });

  it("refuses a CA bundle without a certificate, or with one that does not parse", () => {
    expect(() => createTrustingFetch({ caPem: "" })).toThrow("holds no PEM certificate");
    expect(() => parseCertificateBundle(`${pki.ca.certPem}-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n`)).toThrow("certificate 2 of 2 does not parse");
    expect(parseCertificateBundle(`${pki.ca.certPem}${pki.applianceCa.certPem}`)).toHaveLength(2);
  });
});
