import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { SignJWT, importJWK, type JWK } from "jose";
import { generateKeyAndCsr, issueCertificateFromCsr, loadCertificateAuthority, serviceSpiffeId } from "@lcp/pki";
import { ApplianceService } from "@lcp/proto/licensing/v1/appliance_service_pb";
import { SigningKeyService } from "@lcp/proto/signing/v1/signing_key_service_pb";
import { assertOwnDeployment, createClient, principalKey, type DeniedEvent, type Principal } from "@lcp/rpc";
import { createTestPki, type TestPki } from "@lcp/testing/pki";
import { startTestServer, type TestServer } from "@lcp/testing/server";
import { ensureDevAdminIssuer } from "@lcp/tokens";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { failure, newCalls, signingStub } from "./fixtures.js";

const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => "ok",
    (e: unknown) => Code[ConnectError.from(e).code],
  );

describe("authentication by client certificate and bearer token, over real TLS", () => {
  let pki: TestPki;
  let t: TestServer;
  const calls = newCalls();
  const denied: DeniedEvent[] = [];
  const seen: Principal[] = [];
  const register = (router: ConnectRouter) => {
    signingStub(calls)(router);
    router.service(ApplianceService, {
      sendHeartbeat(req, ctx) {
        const principal = ctx.values.get(principalKey);
        seen.push(principal);
        assertOwnDeployment(principal, req.licenseId);
        return {};
      },
    });
  };

  beforeAll(async () => {
    pki = await createTestPki();
    t = await startTestServer({
      name: "signing-keys",
      pki,
      register,
      onDenied: (e) => void denied.push(e),
      checkAppliance: async (p) =>
        p.deploymentId === "dep-revoked" ? { ok: false, reason: "certificate serial revoked" } : { ok: true },
    });
  });
  afterAll(() => t?.close());

  const mtls = async (pair: { certPem: string; keyPem: string }) =>
    createClient(SigningKeyService, {
      baseUrl: t.url,
      tls: { caPem: pki.ca.certPem, certPem: pair.certPem, keyPem: pair.keyPem },
      retries: 0,
    });

  it("lets anyone call the public GetJwks, even with an untrusted certificate", async () => {
    expect(await codeOf(t.anonymousClient(SigningKeyService).getJwks({}))).toBe("ok");
    expect(await codeOf((await mtls(await pki.foreignService("licensing"))).getJwks({}))).toBe("ok");
  });

  it("refuses an internal RPC without a client certificate: Unauthenticated", async () => {
    const before = calls.sign;
    expect(await codeOf(t.anonymousClient(SigningKeyService).sign({ typ: "license+jwt" }))).toBe("Unauthenticated");
    expect(calls.sign).toBe(before);
  });

  it("never turns a certificate from another CA into an identity", async () => {
    const err = await failure((await mtls(await pki.foreignService("licensing"))).sign({}));
    expect(err).toMatchObject({ code: Code.Unauthenticated });
    expect(err.rawMessage).toMatch(/not trusted/);
  });

  it("never lets the appliance CA mint a service identity", async () => {
    const applianceCa = await loadCertificateAuthority(pki.applianceCa);
    const { keyPem, csrPem } = await generateKeyAndCsr({ commonName: "licensing" });
    const issued = await issueCertificateFromCsr(applianceCa, {
      csrPem,
      spiffeId: serviceSpiffeId(pki.trustDomain, "licensing"),
      validityMs: 3_600_000,
    });
    if (!issued.ok) throw new Error(issued.message);
    const err = await failure((await mtls({ certPem: issued.certPem, keyPem })).sign({}));
    expect(err).toMatchObject({ code: Code.Unauthenticated });
    expect(err.rawMessage).toMatch(/not issued by the platform CA/);
  });

  it("lets licensing Sign, and refuses audit with PermissionDenied and an onDenied event", async () => {
    const licensing = await t.serviceClient(SigningKeyService, "licensing");
    expect((await licensing.sign({ typ: "license+jwt" })).token).toBe("signed:license+jwt");

    denied.length = 0;
    const audit = await t.serviceClient(SigningKeyService, "audit");
    expect(await codeOf(audit.sign({ typ: "license+jwt" }))).toBe("PermissionDenied");
    expect(denied).toHaveLength(1);
    expect(denied[0]).toMatchObject({
      principal: { kind: "service", name: "audit" },
      procedure: "signing.v1.SigningKeyService/Sign",
      code: "permission_denied",
    });
    expect(denied[0]!.reason).toMatch(/licensing/);
    expect(denied[0]!.requestId).not.toBe("");
  });

  it("admits an appliance to its own deployment only, never to service RPCs", async () => {
    const box = await t.applianceClient(ApplianceService, "dep-1");
    seen.length = 0;
    expect(await codeOf(box.sendHeartbeat({ licenseId: "dep-1" }))).toBe("ok");
    expect(seen[0]).toMatchObject({ kind: "appliance", deploymentId: "dep-1" });
    expect((seen[0] as { serialNumber: string }).serialNumber).toBe((await pki.appliance("dep-1")).serialNumber);
    expect(await codeOf(box.sendHeartbeat({ licenseId: "dep-2" }))).toBe("PermissionDenied");
    const asSigner = await t.applianceClient(SigningKeyService, "dep-1");
    expect(await codeOf(asSigner.sign({}))).toBe("PermissionDenied");
  });

  it("refuses an appliance that checkAppliance rejects: Unauthenticated with the reason", async () => {
    const box = await t.applianceClient(ApplianceService, "dep-revoked");
    const err = await failure(box.sendHeartbeat({ licenseId: "dep-revoked" }));
    expect(err).toMatchObject({ code: Code.Unauthenticated });
    expect(err.rawMessage).toMatch(/certificate serial revoked/);
  });

  it("refuses an appliance certificate from a foreign CA", async () => {
    const cert = await pki.foreignAppliance("dep-1");
    const box = createClient(ApplianceService, {
      baseUrl: t.url,
      tls: { caPem: pki.ca.certPem, certPem: cert.certPem, keyPem: cert.keyPem },
      retries: 0,
    });
    expect(await codeOf(box.sendHeartbeat({ licenseId: "dep-1" }))).toBe("Unauthenticated");
  });

  it("drops appliance trust at runtime (setApplianceTrust), also for new connections", async () => {
    t.server.setApplianceTrust([]);
    try {
      const box = await t.applianceClient(ApplianceService, "dep-1");
      expect(await codeOf(box.sendHeartbeat({ licenseId: "dep-1" }))).toBe("Unauthenticated");
    } finally {
      t.server.setApplianceTrust([pki.applianceCa.certPem]);
    }
    const box = await t.applianceClient(ApplianceService, "dep-1");
    expect(await codeOf(box.sendHeartbeat({ licenseId: "dep-1" }))).toBe("ok");
  });

  describe("admin bearer tokens", () => {
    const withToken = (token: string) =>
      createClient(SigningKeyService, {
        baseUrl: t.url,
        tls: { caPem: pki.ca.certPem },
        retries: 0,
        interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${token}`), next(req))],
      });
    const privateJwk = async () => JSON.parse(await readFile(join(t.dir, "admin-issuer.jwk"), "utf8")) as JWK;

    it("lets super_admin manage keys and refuses support with PermissionDenied", async () => {
      expect(await codeOf(t.adminClient(SigningKeyService, ["super_admin"]).listKeys({}))).toBe("ok");
      expect(await codeOf(t.adminClient(SigningKeyService, ["support"]).createKey({}))).toBe("PermissionDenied");
      // super_admin passes authorisation; the stub does not implement CreateKey.
      expect(await codeOf(t.adminClient(SigningKeyService, ["super_admin"]).createKey({}))).toBe("Unimplemented");
    });

    it("refuses an expired token", async () => {
      const token = await t.adminToken(["super_admin"], { now: new Date(Date.now() - 3_600_000), ttlSeconds: 60 });
      const err = await failure(withToken(token).listKeys({}));
      expect(err).toMatchObject({ code: Code.Unauthenticated });
      expect(err.rawMessage).toMatch(/admin token refused: token has expired/);
    });

    it("refuses a token from another issuer key", async () => {
      const dir = await mkdtemp(join(tmpdir(), "lcp-other-issuer-"));
      try {
        const other = await ensureDevAdminIssuer(dir);
        const token = await other.mint({ subject: "mallory", roles: ["super_admin"], ttlSeconds: 60 });
        expect(await codeOf(withToken(token).listKeys({}))).toBe("Unauthenticated");
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });

    it("refuses alg none and HS256 signed with the public key", async () => {
      const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
      const claims = {
        iss: t.issuer.issuer,
        aud: t.issuer.audience,
        sub: "mallory",
        roles: ["super_admin"],
        exp: Math.floor(Date.now() / 1000) + 600,
      };
      const none = `${b64({ alg: "none", typ: "JWT" })}.${b64(claims)}.`;
      expect(await codeOf(withToken(none).listKeys({}))).toBe("Unauthenticated");

      const { d: _d, ...publicJwk } = await privateJwk();
      const hs = await new SignJWT(claims)
        .setProtectedHeader({ alg: "HS256", kid: publicJwk.kid })
        .sign(new TextEncoder().encode(JSON.stringify(publicJwk)));
      const err = await failure(withToken(hs).listKeys({}));
      expect(err).toMatchObject({ code: Code.Unauthenticated });
      expect(err.rawMessage).not.toMatch(/JWS|JOSE|ERR_/);
    });

    it("refuses a token without the roles claim", async () => {
      const jwk = await privateJwk();
      const token = await new SignJWT({})
        .setProtectedHeader({ alg: "EdDSA", kid: jwk.kid })
        .setIssuer(t.issuer.issuer)
        .setAudience(t.issuer.audience)
        .setSubject("someone")
        .setIssuedAt()
        .setExpirationTime("5m")
        .sign(await importJWK(jwk, "EdDSA"));
      const err = await failure(withToken(token).listKeys({}));
      expect(err).toMatchObject({ code: Code.Unauthenticated });
      expect(err.rawMessage).toMatch(/roles/);
    });

    it("prefers the bearer token over a client certificate", async () => {
      const cert = await pki.service("licensing");
      const token = await t.adminToken(["support"]);
      const both = createClient(SigningKeyService, {
        baseUrl: t.url,
        tls: { caPem: pki.ca.certPem, certPem: cert.certPem, keyPem: cert.keyPem },
        retries: 0,
        interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${token}`), next(req))],
      });
      // As licensing this would succeed; as support it is refused.
      expect(await codeOf(both.sign({ typ: "license+jwt" }))).toBe("PermissionDenied");
    });
  });
});

describe("a listener that demands client certificates", () => {
  let t: TestServer;
  const calls = newCalls();
  beforeAll(async () => {
    t = await startTestServer({ name: "audit", register: signingStub(calls), requireClientCertificate: true });
  });
  afterAll(() => t?.close());

  it("refuses the handshake for a foreign or missing certificate, accepts a platform one", async () => {
    const foreign = await t.pki.foreignService("licensing");
    const foreignClient = createClient(SigningKeyService, {
      baseUrl: t.url,
      tls: { caPem: t.pki.ca.certPem, certPem: foreign.certPem, keyPem: foreign.keyPem },
      retries: 0,
      timeoutMs: 5_000,
    });
    const err = await failure(foreignClient.getJwks({}));
    // The TLS alert reaches the client as a failed or cancelled connection, never a response.
    expect(err).toBeInstanceOf(ConnectError);
    expect([Code.Canceled, Code.Unavailable, Code.Internal, Code.Unknown]).toContain(err.code);
    expect(calls.getJwks).toBe(0);
    expect(await codeOf(t.anonymousClient(SigningKeyService).getJwks({}))).not.toBe("ok");
    expect(await codeOf((await t.serviceClient(SigningKeyService, "licensing")).sign({ typ: "x" }))).toBe("ok");
  });
});
