import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ConnectRouter } from "@connectrpc/connect";
import { ApplianceService } from "@lcp/proto/licensing/v1/appliance_service_pb";
import type { ListKeysRequest } from "@lcp/proto/signing/v1/signing_key_service_pb";
import { KeyState, SigningKeyService } from "@lcp/proto/signing/v1/signing_key_service_pb";
import { assertOwnDeployment, DomainError, principalKey, type DeniedEvent, type Principal } from "@lcp/rpc";
import { httpCall, type HttpCallOptions } from "@lcp/testing/http";
import { metricValue, scrapeMetrics } from "@lcp/testing/metrics";
import { createTestPki, type TestPki } from "@lcp/testing/pki";
import { startTestServer, type TestServer } from "@lcp/testing/server";

describe("the google.api.http paths, over real TLS, through the Connect handlers' admission", () => {
  let pki: TestPki;
  let t: TestServer;
  const denied: DeniedEvent[] = [];
  const seen: Principal[] = [];
  let lastListKeys: ListKeysRequest | undefined;
  let lastReason = "";
  const register = (router: ConnectRouter) => {
    router.service(SigningKeyService, {
      getJwks: () => ({ jwksJson: '{"keys":[]}', kids: ["k1"] }),
      listKeys(req) {
        lastListKeys = req;
        return { keys: [{ kid: "k1", algorithm: "EdDSA", state: KeyState.ACTIVE }] };
      },
      rotateKeys(req) {
        lastReason = req.reason;
        throw new DomainError("NO_ACTIVE_KEY", "no active signing key", { hint: "create one" });
      },
      retireKey: (req) => ({ key: { kid: req.kid } }),
    });
    router.service(ApplianceService, {
      sendHeartbeat(req, ctx) {
        const principal = ctx.values.get(principalKey);
        seen.push(principal);
        assertOwnDeployment(principal, req.licenseId);
        return { directives: [] };
      },
    });
  };

  beforeAll(async () => {
    pki = await createTestPki();
    t = await startTestServer({ name: "signing-keys", pki, register, onDenied: (e) => void denied.push(e), deniedAuditWindowMs: 0, maxReceiveMessageBytes: 4_096 });
  });
  afterAll(() => t?.close());

  const call = (o: Omit<HttpCallOptions, "baseUrl" | "caPem">) => httpCall({ baseUrl: t.url, caPem: pki.ca.certPem, ...o });

  for (const h2 of [false, true]) {
    describe(h2 ? "over HTTP/2" : "over HTTP/1.1", () => {
      it("serves a public GET without credentials, as proto3 JSON", async () => {
        const res = await call({ method: "GET", path: "/signing/jwks", h2 });
        expect(res.status).toBe(200);
        expect(res.headers["content-type"]).toBe("application/json");
        expect(res.json).toEqual({ jwksJson: '{"keys":[]}', kids: ["k1"] });
      });

      it("admits an admin by bearer token, reading repeated enums and integers from the query", async () => {
        const token = await t.adminToken(["super_admin"]);
        const res = await call({ method: "GET", path: "/signing/keys?states=KEY_STATE_ACTIVE&states=3&page_size=5", token, h2 });
        expect(res.status).toBe(200);
        expect(res.json).toEqual({ keys: [{ kid: "k1", algorithm: "EdDSA", state: "KEY_STATE_ACTIVE" }] });
        expect(lastListKeys).toMatchObject({ states: [KeyState.ACTIVE, 3], pageSize: 5 });
      });

      it("answers a refusal as google.rpc.Status with the HTTP status of its code, and audits it", async () => {
        denied.length = 0;
        const anonymous = await call({ method: "GET", path: "/signing/keys", h2 });
        expect(anonymous.status).toBe(401);
        expect(anonymous.json).toMatchObject({ code: 16, message: expect.any(String) });
        expect(denied).toMatchObject([{ procedure: "signing.v1.SigningKeyService/ListKeys", code: "unauthenticated" }]);
        const support = await call({ method: "GET", path: "/signing/keys", token: await t.adminToken(["support"]), h2 });
        expect(support.status).toBe(403);
        expect(support.json).toMatchObject({ code: 7 });
        expect(denied).toHaveLength(2);
      });

      it("maps a domain error to its code, with the ErrorInfo detail in JSON", async () => {
        const res = await call({ method: "POST", path: "/signing/keys:rotate", body: { reason: "quarterly" }, token: await t.adminToken(["super_admin"]), h2 });
        expect(lastReason).toBe("quarterly");
        expect(res.status).toBe(400);
        expect(res.json).toEqual({
          code: 9,
          message: "no active signing key",
          details: [{ "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason: "NO_ACTIVE_KEY", domain: "lcp", metadata: { hint: "create one" } }],
        });
      });

      it("fills the request from the path and the body", async () => {
        const res = await call({ method: "POST", path: "/signing/keys/k%2D7:retire", body: { reason: "old" }, token: await t.adminToken(["super_admin"]), h2 });
        expect(res.status).toBe(200);
        expect(res.json).toEqual({ key: { kid: "k-7" } });
      });

      it("renews a box's heartbeat by its client certificate, and refuses it without one", async () => {
        const box = await pki.appliance("dep-1");
        seen.length = 0;
        const ok = await call({ method: "POST", path: "/licenses/dep-1/heartbeat", body: { fingerprint: "fp" }, cert: box, h2 });
        expect(ok.status).toBe(200);
        expect(seen[0]).toMatchObject({ kind: "appliance", deploymentId: "dep-1" });
        expect((await call({ method: "POST", path: "/licenses/dep-2/heartbeat", body: {}, cert: box, h2 })).status).toBe(403);
        const bare = await call({ method: "POST", path: "/licenses/dep-1/heartbeat", body: {}, h2 });
        expect(bare.status).toBe(401);
        expect(bare.json).toMatchObject({ code: 16 });
      });

      it("refuses bad requests with 400 naming what is wrong, before any handler runs", async () => {
        const token = await t.adminToken(["super_admin"]);
        lastListKeys = undefined;
        const unknown = await call({ method: "GET", path: "/signing/keys?colour=red", token, h2 });
        expect([unknown.status, unknown.json.code, unknown.json.message]).toEqual([400, 3, expect.stringMatching(/unknown query parameter "colour"/)]);
        const withBody = await call({ method: "GET", path: "/signing/keys", body: { states: [] }, token, h2 });
        expect([withBody.status, withBody.json.message]).toEqual([400, expect.stringMatching(/takes no request body/)]);
        const shape = await call({ method: "POST", path: "/signing/keys:rotate", body: { reason: 12 }, token, h2 });
        expect([shape.status, shape.json.message]).toEqual([400, expect.stringMatching(/reason/)]);
        const notJson = await call({ method: "POST", path: "/signing/keys:rotate", body: "{reason", token, h2 });
        expect([notJson.status, notJson.json.message]).toEqual([400, expect.stringMatching(/not valid JSON/)]);
        const wrongType = await call({ method: "POST", path: "/signing/keys:rotate", body: "reason=x", headers: { "content-type": "text/plain" }, token, h2 });
        expect(wrongType.status).toBe(415);
        const badEnum = await call({ method: "GET", path: "/signing/keys?states=KEY_STATE_NOPE", token, h2 });
        expect([badEnum.status, badEnum.json.message]).toEqual([400, expect.stringMatching(/states/)]);
        const longQuery = await call({ method: "GET", path: `/signing/keys?page_token=${"x".repeat(5_000)}`, token, h2 });
        expect(longQuery.status).toBe(414);
        expect(lastListKeys).toBeUndefined();
      });

      it("refuses a body over the Connect limit with 413", async () => {
        const res = await call({ method: "POST", path: "/signing/keys:rotate", body: { reason: "x".repeat(8_000) }, token: await t.adminToken(["super_admin"]), h2 });
        expect(res.status).toBe(413);
        expect(res.json).toMatchObject({ code: 8 });
      });

      it("leaves paths without a rule to Connect's 404, and names the methods a path allows", async () => {
        const none = await call({ method: "GET", path: "/nothing/here", h2 });
        expect([none.status, none.text]).toEqual([404, ""]);
        const wrong = await call({ method: "DELETE", path: "/signing/keys", h2 });
        expect(wrong.status).toBe(405);
        expect(wrong.headers.allow).toBe("GET, POST");
      });
    });
  }

  it("counts its own refusals, which never reach an RPC, by HTTP status", async () => {
    const count = async (status: string) => metricValue(await scrapeMetrics(t.url, pki.ca.certPem), "signing_keys_http_gateway_refusals_total", { status }) || 0;
    const before = { 405: await count("405"), 415: await count("415") };
    await call({ method: "DELETE", path: "/signing/keys" });
    await call({ method: "POST", path: "/signing/keys:rotate", body: "reason=x", headers: { "content-type": "application/x-www-form-urlencoded" }, token: await t.adminToken(["super_admin"]) });
    expect(await count("405")).toBe(before[405] + 1);
    expect(await count("415")).toBe(before[415] + 1);
  });

  it("does not serve the rules of services the listener does not register", async () => {
    // Licensing's paths are in the same generated files, but this listener serves signing-keys.
    const res = await call({ method: "GET", path: "/licenses" });
    expect(res.status).toBe(404);
  });
});
