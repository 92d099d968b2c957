import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, adminTokenVerifierFrom, readCommonConfig } from "@lcp/rpc";

describe("readCommonConfig", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "lcp-config-"));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const fails = async (env: Record<string, string>, variable: string) => {
    const err = await readCommonConfig({ DATA_DIR: dir, ...env }, "licensing", { port: 7443 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variable).toBe(variable);
    expect((err as ConfigError).message).toMatch(new RegExp(`^${variable}:`));
  };

  it("names the variable that is wrong or missing", async () => {
    await fails({ PORT: "http" }, "PORT");
    await fails({ PORT: "70000" }, "PORT");
    await fails({ TLS_CERT_FILE: "/x.crt" }, "TLS_KEY_FILE");
    await fails({ TLS_CERT_FILE: "/x.crt", TLS_KEY_FILE: "/x.key", TLS_CA_FILE: "/nope/ca.crt" }, "TLS_CERT_FILE");
    await fails({ OIDC_ISSUER: "https://idp" }, "OIDC_AUDIENCE");
    await fails({ OIDC_AUDIENCE: "lcp" }, "OIDC_ISSUER");
    await fails({ OIDC_ISSUER: "https://idp", OIDC_AUDIENCE: "lcp", OIDC_JWKS_URL: "http://idp.example/jwks" }, "OIDC_JWKS_URL");
    await fails({ TRUST_DOMAIN: "Not A Domain" }, "TRUST_DOMAIN");
    await fails({ LOG_LEVEL: "loud" }, "LOG_LEVEL");
    await fails({ DENIED_AUDIT_WINDOW: "soon" }, "DENIED_AUDIT_WINDOW");
    await fails({ DENIED_AUDIT_WINDOW: "-5s" }, "DENIED_AUDIT_WINDOW");
    await fails({ DENIED_AUDIT_WINDOW: "2h" }, "DENIED_AUDIT_WINDOW");
    await fails({ NODE_ENV: "production" }, "TLS_CERT_FILE");
    await fails({ IDLE_TIMEOUT: "never" }, "IDLE_TIMEOUT");
    await fails({ IDLE_TIMEOUT: "0s" }, "IDLE_TIMEOUT");
    await fails({ IDLE_TIMEOUT: "2h" }, "IDLE_TIMEOUT");
    await fails({ MAX_STREAMS_PER_CONNECTION: "0" }, "MAX_STREAMS_PER_CONNECTION");
    await fails({ MAX_STREAMS_PER_CONNECTION: "lots" }, "MAX_STREAMS_PER_CONNECTION");
    await fails({ MAX_STREAMS_PER_CONNECTION: "100000" }, "MAX_STREAMS_PER_CONNECTION");
    await fails({ KEEPALIVE_INTERVAL: "500ms" }, "KEEPALIVE_INTERVAL");
    await fails({ KEEPALIVE_TIMEOUT: "soon" }, "KEEPALIVE_TIMEOUT");
    await fails({ READINESS_INTERVAL: "often" }, "READINESS_INTERVAL");
    await fails({ READINESS_INTERVAL: "100ms" }, "READINESS_INTERVAL");
    await fails({ READINESS_INTERVAL: "2m" }, "READINESS_INTERVAL");
    await fails({ ADMIN_PORT: "admin" }, "ADMIN_PORT");
    await fails({ ADMIN_PORT: "-1" }, "ADMIN_PORT");
    await fails({ ADMIN_PORT: "70000" }, "ADMIN_PORT");
    await fails({ ADMIN_PORT: "0" }, "ADMIN_PORT");
    await fails({ ADMIN_PORT: "7443" }, "ADMIN_PORT");
    await fails({ PORT: "9000", ADMIN_PORT: "9000" }, "ADMIN_PORT");
    const files = { TLS_CERT_FILE: "/x.crt", TLS_KEY_FILE: "/x.key", TLS_CA_FILE: "/x.pem" };
    await fails({ ...files, TLS_RELOAD_INTERVAL: "often" }, "TLS_RELOAD_INTERVAL");
    await fails({ ...files, TLS_RELOAD_INTERVAL: "500ms" }, "TLS_RELOAD_INTERVAL");
    await fails({ ...files, TLS_RELOAD_INTERVAL: "2h" }, "TLS_RELOAD_INTERVAL");
    await fails({ ...files, TLS_RELOAD_INTERVAL: "0s" }, "TLS_RELOAD_INTERVAL");
    // The dev PKI is not rotated in place: an interval for it is a mistake, said before any file is read.
    await fails({ TLS_RELOAD_INTERVAL: "30s" }, "TLS_RELOAD_INTERVAL");
    await fails({ OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" }, "OTEL_EXPORTER_OTLP_ENDPOINT");
    await fails({ OTEL_EXPORTER_OTLP_ENDPOINT: "not a url" }, "OTEL_EXPORTER_OTLP_ENDPOINT");
    await fails({ OTEL_EXPORTER_OTLP_ENDPOINT: "grpc://collector:4317" }, "OTEL_EXPORTER_OTLP_ENDPOINT");
    await fails({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://user:secret@collector:4318" }, "OTEL_EXPORTER_OTLP_ENDPOINT");
    await fails({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "ftp://x" }, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
  });

  it("turns tracing on only with an OTLP endpoint, as the OpenTelemetry variables say", async () => {
    const read = (env: Record<string, string>) => readCommonConfig({ DATA_DIR: dir, ...env }, "licensing", { port: 7443 }).then((c) => c.tracing);
    expect(await read({})).toBeUndefined();
    expect(await read({ OTEL_EXPORTER_OTLP_ENDPOINT: "" })).toBeUndefined();
    expect(await read({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" })).toEqual({ url: "http://collector:4318/v1/traces" });
    expect(await read({ OTEL_EXPORTER_OTLP_ENDPOINT: "https://collector/otlp/" })).toEqual({ url: "https://collector/otlp/v1/traces" });
    // The signal's own variable is used as it is, and wins.
    expect(await read({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://a:4318", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://b:9999/traces" })).toEqual({
      url: "http://b:9999/traces",
    });
    expect(await read({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318", OTEL_SDK_DISABLED: "true" })).toBeUndefined();
  });

  it("reads ADMIN_PORT (off by default) and READINESS_INTERVAL (default 2s, 500ms … 1m)", async () => {
    const defaults = await readCommonConfig({ DATA_DIR: dir }, "licensing", { port: 7443 });
    expect(defaults.adminPort).toBeUndefined();
    expect(defaults.readinessIntervalMs).toBe(2_000);
    const set = await readCommonConfig({ DATA_DIR: dir, ADMIN_PORT: "9443", READINESS_INTERVAL: "500ms" }, "licensing", { port: 7443 });
    expect(set).toMatchObject({ adminPort: 9443, readinessIntervalMs: 500 });
    expect((await readCommonConfig({ DATA_DIR: dir, READINESS_INTERVAL: "1m" }, "licensing", { port: 7443 })).readinessIntervalMs).toBe(60_000);
  });

  it("reads the connection limits, defaulting to idle 2m, 100 streams, keepalive 60s / 20s", async () => {
    const defaults = await readCommonConfig({ DATA_DIR: dir }, "licensing", { port: 7443 });
    expect(defaults.connectionLimits).toEqual({ idleTimeoutMs: 120_000, maxStreamsPerConnection: 100, keepaliveIntervalMs: 60_000, keepaliveTimeoutMs: 20_000 });
    const set = await readCommonConfig(
      { DATA_DIR: dir, IDLE_TIMEOUT: "30s", MAX_STREAMS_PER_CONNECTION: "8", KEEPALIVE_INTERVAL: "10s", KEEPALIVE_TIMEOUT: "5s" },
      "licensing",
      { port: 7443 },
    );
    expect(set.connectionLimits).toEqual({ idleTimeoutMs: 30_000, maxStreamsPerConnection: 8, keepaliveIntervalMs: 10_000, keepaliveTimeoutMs: 5_000 });
  });

  it("falls back to the dev PKI and dev issuer under DATA_DIR, reusing them on the next start", async () => {
    const first = await readCommonConfig({ DATA_DIR: dir }, "licensing", { port: 7443 });
    expect(first).toMatchObject({ port: 7443, host: "127.0.0.1", dataDir: dir, trustDomain: "lcp.local" });
    expect(first.tls.source).toBe("dev-pki");
    expect(first.tls.certPem).toContain("BEGIN CERTIFICATE");
    expect(first.adminTokens).toMatchObject({ dev: true, rolesClaim: "roles" });
    adminTokenVerifierFrom(first.adminTokens);
    const again = await readCommonConfig({ DATA_DIR: dir, PORT: "0" }, "licensing", { port: 7443 });
    expect(again.port).toBe(0);
    expect(again.tls.caPem).toBe(first.tls.caPem);
    // Repeated refusals are counted for a minute unless told otherwise; 0s audits each alone.
    expect(first.deniedAuditWindowMs).toBe(60_000);
    expect((await readCommonConfig({ DATA_DIR: dir, DENIED_AUDIT_WINDOW: "0s" }, "licensing", { port: 7443 })).deniedAuditWindowMs).toBe(0);
    expect((await readCommonConfig({ DATA_DIR: dir, DENIED_AUDIT_WINDOW: "5m" }, "licensing", { port: 7443 })).deniedAuditWindowMs).toBe(300_000);
  });

  it("reads TLS files and an OIDC issuer when configured", async () => {
    const dev = await readCommonConfig({ DATA_DIR: dir }, "audit", { port: 7445 });
    await writeFile(join(dir, "a.crt"), dev.tls.certPem);
    await writeFile(join(dir, "a.key"), dev.tls.keyPem);
    await writeFile(join(dir, "ca.pem"), dev.tls.caPem);
    const cfg = await readCommonConfig(
      {
        DATA_DIR: dir,
        TLS_CERT_FILE: join(dir, "a.crt"),
        TLS_KEY_FILE: join(dir, "a.key"),
        TLS_CA_FILE: join(dir, "ca.pem"),
        OIDC_ISSUER: "https://idp.example",
        OIDC_AUDIENCE: "lcp",
        OIDC_JWKS_URL: "https://idp.example/jwks",
        OIDC_ROLES_CLAIM: "realm_access.roles",
        NODE_ENV: "production",
      },
      "audit",
      { port: 7445 },
    );
    expect(cfg.tls.source).toBe("files");
    // The files are named for reloading, every 60s unless TLS_RELOAD_INTERVAL says otherwise (off: SIGHUP only).
    expect(cfg.tls.files).toEqual({ cert: join(dir, "a.crt"), key: join(dir, "a.key"), ca: join(dir, "ca.pem") });
    expect(cfg.tlsReloadIntervalMs).toBe(60_000);
    const tlsEnv = { DATA_DIR: dir, TLS_CERT_FILE: join(dir, "a.crt"), TLS_KEY_FILE: join(dir, "a.key"), TLS_CA_FILE: join(dir, "ca.pem") };
    expect((await readCommonConfig({ ...tlsEnv, TLS_RELOAD_INTERVAL: "30s" }, "audit", { port: 7445 })).tlsReloadIntervalMs).toBe(30_000);
    expect((await readCommonConfig({ ...tlsEnv, TLS_RELOAD_INTERVAL: "off" }, "audit", { port: 7445 })).tlsReloadIntervalMs).toBe(0);
    expect(cfg.adminTokens).toMatchObject({ dev: false, issuer: "https://idp.example", rolesClaim: "realm_access.roles" });
    expect(cfg.adminTokens.jwksUrl?.href).toBe("https://idp.example/jwks");
  });
});
