/**
 * The product page's HTTP paths on the console's origin: a request matching a service's
 * `google.api.http` rule goes to the service that owns it with the caller's own bearer token and
 * comes back as the service answered. The console's session never becomes a token here (a cookie
 * alone is unauthenticated at the service), paths without a rule stay the console's own, bodies
 * are bounded, an unreachable owner is a 503 in the services' error shape, and the OpenAPI
 * document is served as on every service's port.
 */
import { openApiDocument } from "@lcp/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestBrowser } from "./support/browser.js";
import { startAuditTrusting, startConsoleUnderTest, type AuditUnderTest, type ConsoleUnderTest } from "./support/console.js";

describe("the product page's HTTP paths through the console", () => {
  let t: ConsoleUnderTest;
  let audit: AuditUnderTest;
  let token: string;
  beforeAll(async () => {
    t = await startConsoleUnderTest({
      beforeConsole: async (idp, pki) => {
        audit = await startAuditTrusting(idp, pki);
        return { audit: audit.url };
      },
    });
    // An auditor's access token, as a script would hold it (the one the provider just issued).
    const browser = createTestBrowser(t.pki.ca.certPem);
    await browser.signIn(t.app.url, "ada");
    token = t.idp.issuedTokens.filter((x) => x.split(".").length === 3).at(-1)!;
  });
  afterAll(async () => {
    await t?.close();
    await audit?.close();
  });

  const anon = () => createTestBrowser(t.pki.ca.certPem);

  it("passes a matching request to its owner with the caller's bearer token, and the answer back", async () => {
    const viaConsole = await anon().request(`${t.app.url}/audit/chain:verify`, { headers: { authorization: `Bearer ${token}` }, anonymous: true });
    expect(viaConsole.status).toBe(200);
    expect(JSON.parse(viaConsole.body)).toMatchObject({ ok: true });
    const direct = await anon().request(`${audit.url}/audit/chain:verify`, { headers: { authorization: `Bearer ${token}` }, anonymous: true });
    expect(JSON.parse(viaConsole.body)).toEqual(JSON.parse(direct.body));
    const listed = await anon().request(`${t.app.url}/audit/events?page_size=5`, { headers: { authorization: `Bearer ${token}` }, anonymous: true });
    expect(listed.status).toBe(200);
    expect(listed.headers["content-type"]).toMatch(/^application\/json/);
  });

  it("never turns the console's session into a token: a signed-in browser without a bearer token is unauthenticated at the service", async () => {
    const browser = createTestBrowser(t.pki.ca.certPem);
    await browser.signIn(t.app.url, "ada");
    const answer = await browser.request(`${t.app.url}/audit/events`);
    expect(answer.status).toBe(401);
    expect(JSON.parse(answer.body)).toMatchObject({ code: 16 });
    const bare = await anon().request(`${t.app.url}/audit/chain:verify`, { anonymous: true });
    expect(bare.status).toBe(401);
  });

  it("keeps paths without a rule its own, bounds bodies, and answers 503 for an owner it cannot reach", async () => {
    expect((await anon().request(`${t.app.url}/licenses-and-more`, { anonymous: true })).status).toBe(404);
    const big = await anon().request(`${t.app.url}/licenses`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: Buffer.alloc(2 * 1024 * 1024, 0x20),
      anonymous: true,
    });
    expect(big.status).toBe(413);
    // Licensing is not running in this test: its paths answer 503 Unavailable, as a Status.
    const down = await anon().request(`${t.app.url}/licenses`, { headers: { authorization: `Bearer ${token}` }, anonymous: true });
    expect(down.status).toBe(503);
    expect(JSON.parse(down.body)).toMatchObject({ code: 14 });
  });

  it("serves the OpenAPI document at /openapi.json", async () => {
    const doc = await anon().request(`${t.app.url}/openapi.json`, { anonymous: true });
    expect(doc.status).toBe(200);
    expect(JSON.parse(doc.body)).toEqual(openApiDocument);
  });
});
