import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { AuditService, ListEventsRequestSchema } from "@lcp/proto/audit/v1/audit_service_pb";
import { SigningKeyService } from "@lcp/proto/signing/v1/signing_key_service_pb";
import { ErrorInfoSchema } from "@lcp/proto/google/rpc/error_details_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiRoutes } from "../src/api-routes.js";
import type { TestBrowser } from "./support/browser.js";
import { createTestBrowser } from "./support/browser.js";
import { connectHeaders, startAuditTrusting, startConsoleUnderTest, type AuditUnderTest, type ConsoleUnderTest } from "./support/console.js";

/** A connect-node client calling through the console as the web app does: cookie + CSRF header. */
function throughConsole<T extends typeof AuditService | typeof SigningKeyService>(t: ConsoleUnderTest, browser: TestBrowser, csrf: string, service: T, binary = false) {
  const asBrowser: Interceptor = (next) => async (req) => {
    req.header.set("cookie", `__Host-lcp_session=${browser.cookie(t.app.url, "__Host-lcp_session")}`);
    req.header.set("x-csrf-token", csrf);
    req.header.set("origin", t.app.publicUrl);
    return next(req);
  };
  const transport = createConnectTransport({
    baseUrl: `${t.app.url}/api`,
    httpVersion: "1.1",
    useBinaryFormat: binary,
    nodeOptions: { ca: t.pki.ca.certPem },
    interceptors: [asBrowser],
  });
  return createClient(service, transport);
}

async function signedIn(t: ConsoleUnderTest, user: string): Promise<{ browser: TestBrowser; csrf: string }> {
  const browser = createTestBrowser(t.pki.ca.certPem);
  await browser.signIn(t.app.url, user);
  const csrf = (JSON.parse((await browser.request(`${t.app.url}/auth/session`)).body) as { csrfToken: string }).csrfToken;
  return { browser, csrf };
}

describe("POST /api/<pkg.Service>/<Method> forwards Connect unary calls to the owning service", () => {
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

  it("reaches audit with the admin's bearer token: a support admin lists events, an onboarding admin is refused by the service and that refusal is audited under their name", async () => {
    const olga = await signedIn(t, "olga");
    const refused = await throughConsole(t, olga.browser, olga.csrf, AuditService)
      .listEvents({})
      .then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(refused?.code).toBe(Code.PermissionDenied);
    expect(refused?.rawMessage).toMatch(/audit\.read/);

    const sam = await signedIn(t, "sam");
    const listed = await throughConsole(t, sam.browser, sam.csrf, AuditService).listEvents({ action: "authz.denied" });
    const denial = listed.events.find((e) => e.actor?.id === "olga");
    expect(denial, "the service saw olga's token").toBeDefined();
    expect(denial!.actor!.roles).toEqual(["onboarding"]);
  });

  it("the service's error details (google.rpc.ErrorInfo) come back intact, in JSON and in binary", async () => {
    const sam = await signedIn(t, "sam");
    for (const binary of [false, true]) {
      const error = await throughConsole(t, sam.browser, sam.csrf, AuditService, binary)
        .listEvents({ pageToken: "not-a-page-token" })
        .then(() => undefined, (e: unknown) => ConnectError.from(e));
      expect(error?.code).toBe(Code.InvalidArgument);
      const info = error!.findDetails(ErrorInfoSchema)[0];
      expect(info?.reason).toBe("PAGE_TOKEN_INVALID");
      expect(info?.domain).toBe("lcp");
      expect(info?.metadata.field).toBe("page_token");
    }
  });

  it("passes status, content type and body through as the service sent them (raw application/proto)", async () => {
    const sam = await signedIn(t, "sam");
    const body = Buffer.from(toBinary(ListEventsRequestSchema, create(ListEventsRequestSchema, { pageSize: 1 })));
    const answer = await sam.browser.request(`${t.app.url}/api/audit.v1.AuditService/ListEvents`, {
      method: "POST",
      headers: connectHeaders(sam.csrf, { "content-type": "application/proto", "connect-timeout-ms": "5000" }),
      body,
    });
    expect(answer.status).toBe(200);
    expect(answer.headers["content-type"]).toBe("application/proto");
    expect(answer.headers["x-request-id"]).toBeTruthy();
    expect(answer.headers["set-cookie"]).toBeUndefined();
  });

  it("internal and unknown methods answer 404 (Unimplemented) without reaching any service", async () => {
    const sam = await signedIn(t, "sam");
    for (const path of [
      "audit.v1.AuditService/Append",
      "signing.v1.SigningKeyService/Sign",
      "signing.v1.SigningKeyService/IssueApplianceCertificate",
      "signing.v1.SigningKeyService/GetApplianceTrustBundle",
      "licensing.v1.ReconcileService/Reconcile",
      "licensing.v1.ApplianceService/Activate",
      "licensing.v1.LicensingService/NoSuchMethod",
      "grpc.health.v1.Health/Check",
      "audit.v1.AuditService/ListEvents/extra",
    ]) {
      const answer = await sam.browser.request(`${t.app.url}/api/${path}`, { method: "POST", headers: connectHeaders(sam.csrf), body: "{}" });
      expect(answer.status, path).toBe(404);
      expect(JSON.parse(answer.body), path).toEqual({ code: "unimplemented", message: expect.stringContaining("not available through the console") });
    }
    const append = await throughConsole(t, sam.browser, sam.csrf, AuditService)
      .append({ events: [] })
      .then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(append?.code).toBe(Code.Unimplemented);
    const sign = await throughConsole(t, sam.browser, sam.csrf, SigningKeyService)
      .sign({})
      .then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(sign?.code).toBe(Code.Unimplemented);
  });

  it("routes exactly the admin-facing and public unary methods of the fronted services", () => {
    const routes = Object.fromEntries(apiRoutes());
    expect(routes).toEqual({
      "licensing.v1.LicensingService/ListLicenses": "licensing",
      "licensing.v1.LicensingService/GetLicense": "licensing",
      "licensing.v1.LicensingService/IssueLicense": "licensing",
      "licensing.v1.LicensingService/ProvisionDeployment": "licensing",
      "licensing.v1.LicensingService/ListDeployments": "licensing",
      "licensing.v1.LicensingService/GetDeployment": "licensing",
      "licensing.v1.LicensingService/RevokeLicense": "licensing",
      "licensing.v1.LicensingService/RebindLicense": "licensing",
      "licensing.v1.LicensingService/SetSubscriptionStatus": "licensing",
      "licensing.v1.LicensingService/SetConnectivity": "licensing",
      "licensing.v1.LicensingService/RespondToActivation": "licensing",
      "licensing.v1.LicensingService/RespondToRenewal": "licensing",
      "licensing.v1.LicensingService/ListHeartbeats": "licensing",
      "licensing.v1.LicensingService/SendDirective": "licensing",
      "licensing.v1.LicensingService/GetSettings": "licensing",
      "licensing.v1.LicensingService/UpdateSettings": "licensing",
      "licensing.v1.LicensingService/GetFleetSummary": "licensing",
      "signing.v1.SigningKeyService/ListKeys": "signingKeys",
      "signing.v1.SigningKeyService/CreateKey": "signingKeys",
      "signing.v1.SigningKeyService/RotateKeys": "signingKeys",
      "signing.v1.SigningKeyService/RetireKey": "signingKeys",
      "signing.v1.SigningKeyService/RevokeKey": "signingKeys",
      "signing.v1.SigningKeyService/GetJwks": "signingKeys",
      "signing.v1.SigningKeyService/RotateApplianceCa": "signingKeys",
      "audit.v1.AuditService/ListEvents": "audit",
      "audit.v1.AuditService/CountEvents": "audit",
      "audit.v1.AuditService/VerifyChain": "audit",
      "fleet.v1.FleetSweepService/Sweep": "fleetSweep",
      "fleet.v1.FleetSweepService/GetSweep": "fleetSweep",
      "fleet.v1.FleetSweepService/ListSweeps": "fleetSweep",
      "ops.v1.OutboxService/ListQuarantinedEvents": "licensing",
    });
  });

  it("a service that cannot be reached answers 503 Unavailable", async () => {
    const sam = await signedIn(t, "sam");
    const error = await throughConsole(t, sam.browser, sam.csrf, SigningKeyService)
      .listKeys({})
      .then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(error?.code).toBe(Code.Unavailable);
    expect(error?.rawMessage).toMatch(/signingKeys service is unavailable/);
  });

  it("refuses other codecs with 415 and bodies over 1 MiB with 413", async () => {
    const sam = await signedIn(t, "sam");
    const xml = await sam.browser.request(`${t.app.url}/api/audit.v1.AuditService/ListEvents`, {
      method: "POST",
      headers: connectHeaders(sam.csrf, { "content-type": "text/xml" }),
      body: "<x/>",
    });
    expect(xml.status).toBe(415);
    const big = await sam.browser.request(`${t.app.url}/api/audit.v1.AuditService/ListEvents`, {
      method: "POST",
      headers: connectHeaders(sam.csrf),
      body: `{"action":"${"a".repeat(1024 * 1024)}"}`,
    });
    expect(big.status).toBe(413);
    expect(JSON.parse(big.body)).toEqual({ code: "resource_exhausted", message: expect.stringContaining("1048576") });
    expect(big.headers.connection).toBe("close");
  });

  it("no access or refresh token ever appears in an answer or a log line", async () => {
    const sam = await signedIn(t, "sam");
    const answers = [
      await sam.browser.request(`${t.app.url}/auth/session`),
      await sam.browser.request(`${t.app.url}/api/audit.v1.AuditService/ListEvents`, { method: "POST", headers: connectHeaders(sam.csrf), body: "{}" }),
      await sam.browser.request(`${t.app.url}/licensing`),
    ];
    expect(t.idp.issuedTokens.length).toBeGreaterThan(0);
    const logs = t.logs();
    for (const token of t.idp.issuedTokens) {
      expect(logs).not.toContain(token);
      for (const answer of answers) {
        expect(answer.body).not.toContain(token);
        expect(JSON.stringify(answer.headers)).not.toContain(token);
      }
    }
    // Request lines are written, without query strings.
    expect(logs).toMatch(/"method":"POST","path":"\/api\/audit\.v1\.AuditService\/ListEvents","status":200,"ms":\d+/);
    expect(logs).not.toMatch(/"path":"[^"]*\?/);
  });
});
