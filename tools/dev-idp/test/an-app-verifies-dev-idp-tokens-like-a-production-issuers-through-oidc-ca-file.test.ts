import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { startAudit, type AuditApp } from "@lcp/audit/app";
import { AuditService } from "@lcp/proto/audit/v1/audit_service_pb";
import { adminTokenVerifierFrom, ConfigError, createAdminClient, readCommonConfig } from "@lcp/rpc";
import { importJWK, SignJWT, type JWK } from "jose";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEV_IDP_FILES } from "../provider.js";
import { signInAs } from "../sign-in.js";
import { startTestIdp, type TestIdp } from "./support.js";

describe("an app configured with OIDC_ISSUER, OIDC_AUDIENCE, OIDC_JWKS_URL and OIDC_CA_FILE of the dev IdP", () => {
  let t: TestIdp;
  let dir: string;
  let app: AuditApp;
  let env: Record<string, string>;

  beforeAll(async () => {
    t = await startTestIdp();
    dir = await mkdtemp(join(tmpdir(), "lcp-idp-app-"));
    const cert = await t.pki.service("audit");
    await writeFile(join(dir, "audit.crt"), cert.certPem);
    await writeFile(join(dir, "audit.key"), cert.keyPem);
    await writeFile(join(dir, "ca.crt"), t.pki.ca.certPem);
    env = {
      DATA_DIR: dir,
      PORT: "0",
      TLS_CERT_FILE: join(dir, "audit.crt"),
      TLS_KEY_FILE: join(dir, "audit.key"),
      TLS_CA_FILE: join(dir, "ca.crt"),
      OIDC_ISSUER: t.idp.issuer,
      OIDC_AUDIENCE: t.idp.audience,
      OIDC_JWKS_URL: t.idp.jwksUrl,
      OIDC_CA_FILE: join(dir, "ca.crt"),
    };
    // The configuration exactly as the app's main reads it from the environment.
    const common = await readCommonConfig(env, "audit", { port: 7445 });
    app = await startAudit({ ...common, maxClockSkewMs: 300_000, logger: pino({ level: "silent" }), shutdownGraceMs: 2_000 });
  });

  afterAll(async () => {
    await app?.close();
    await t?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const signIn = (role: string) => {
    const user = t.idp.users.find((u) => u.role === role)!;
    return signInAs({ issuer: t.idp.issuer, caPem: t.caPem, username: user.username, password: user.password });
  };
  const client = (token: string) => createAdminClient(AuditService, { baseUrl: app.url, caPem: t.pki.ca.certPem, token, retries: 0 });

  it("accepts a signed-in auditor on an admin call, and refuses the permission to a role without it", async () => {
    const { accessToken } = await signIn("auditor");
    const res = await client(accessToken).listEvents({});
    expect(Array.isArray(res.events)).toBe(true);

    const onboarding = await signIn("onboarding");
    const refused = await client(onboarding.accessToken)
      .listEvents({})
      .catch((e: unknown) => ConnectError.from(e));
    expect(refused).toMatchObject({ code: Code.PermissionDenied });
  });

  it("refuses a token signed by the dev IdP's own key for another audience", async () => {
    const jwk = JSON.parse(await readFile(join(t.stateDir, DEV_IDP_FILES.signingKey), "utf8")) as JWK & { kid: string };
    const key = await importJWK(jwk, "ES256");
    const other = await new SignJWT({ roles: ["auditor"] })
      .setProtectedHeader({ alg: "ES256", typ: "at+jwt", kid: jwk.kid })
      .setIssuer(t.idp.issuer)
      .setAudience("urn:another:service")
      .setSubject("auditor")
      .setIssuedAt()
      .setExpirationTime("5m")
      .sign(key);
    const refused = await client(other)
      .listEvents({})
      .then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
    expect(refused).toMatchObject({ code: Code.Unauthenticated });
    expect(refused?.rawMessage).toContain("not meant for this audience");

    // The same key and audience with the right claims passes: the refusal above was the audience.
    const right = await new SignJWT({ roles: ["auditor"] })
      .setProtectedHeader({ alg: "ES256", typ: "at+jwt", kid: jwk.kid })
      .setIssuer(t.idp.issuer)
      .setAudience(t.idp.audience)
      .setSubject("auditor")
      .setIssuedAt()
      .setExpirationTime("5m")
      .sign(key);
    await client(right).listEvents({});
  });

  it("cannot fetch the dev IdP's keys without OIDC_CA_FILE: its CA is not a system root", async () => {
    const { accessToken } = await signIn("auditor");
    const { OIDC_CA_FILE: _, ...withoutCa } = env;
    const bare = await readCommonConfig(withoutCa, "audit", { port: 7445 });
    expect(bare.adminTokens.jwksCaPem).toBeUndefined();
    expect(await adminTokenVerifierFrom(bare.adminTokens).verify(accessToken)).toMatchObject({ ok: false, code: "TOKEN_KEYS_UNAVAILABLE" });
    const withCa = await readCommonConfig(env, "audit", { port: 7445 });
    expect(await adminTokenVerifierFrom(withCa.adminTokens).verify(accessToken)).toMatchObject({ ok: true, subject: "auditor", roles: ["auditor"] });
  });

  it("refuses an OIDC_CA_FILE it cannot read or parse, or one without an OIDC issuer, naming the variable", async () => {
    await writeFile(join(dir, "empty.pem"), "");
    await writeFile(join(dir, "key-only.pem"), (await t.pki.service("audit")).keyPem);
    await writeFile(join(dir, "broken.pem"), "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n");
    const { OIDC_ISSUER: _i, OIDC_AUDIENCE: _a, OIDC_JWKS_URL: _j, ...noIssuer } = env;
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ ...env, OIDC_CA_FILE: join(dir, "missing.pem") }, /^OIDC_CA_FILE: cannot read .*missing\.pem \(ENOENT\)$/],
      [{ ...env, OIDC_CA_FILE: join(dir, "empty.pem") }, /^OIDC_CA_FILE: .*empty\.pem is not a PEM file$/],
      [{ ...env, OIDC_CA_FILE: join(dir, "key-only.pem") }, /^OIDC_CA_FILE: .*key-only\.pem holds no PEM certificate/],
      [{ ...env, OIDC_CA_FILE: join(dir, "broken.pem") }, /^OIDC_CA_FILE: .*broken\.pem certificate 1 of 1 does not parse$/],
      [{ ...env, OIDC_CA_FILE: dir }, /^OIDC_CA_FILE: cannot read /],
      [noIssuer, /^OIDC_CA_FILE: only applies with OIDC_ISSUER/],
      [{ ...env, OIDC_JWKS_URL: "http://localhost:1/jwks" }, /^OIDC_CA_FILE: only applies to an https OIDC_JWKS_URL$/],
    ];
    for (const [caseEnv, message] of cases) {
      const err = await readCommonConfig(caseEnv, "audit", { port: 7445 }).catch((e: unknown) => e);
      expect(err, String(message)).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).variable).toBe("OIDC_CA_FILE");
      expect((err as ConfigError).message).toMatch(message);
    }
  });
});
