/** The console's configuration: parsed once at start; a bad value fails naming its variable, and main exits 2. */
import { spawn } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "@lcp/rpc";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DEV_SESSION_KEY_FILE, loadOrCreateDevSessionKey, readConsoleConfig } from "../src/config.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "lcp-console-config-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const refusal = (env: NodeJS.ProcessEnv) =>
  readConsoleConfig({ DATA_DIR: dir, ...env }).then(
    () => undefined,
    (e: unknown) => e,
  );

describe("console configuration", () => {
  for (const [variable, env] of [
    ["PORT", { PORT: "http" }],
    ["PUBLIC_URL", { PUBLIC_URL: "http://console.example" }],
    ["PUBLIC_URL", { PUBLIC_URL: "https://console.example/console" }],
    ["PUBLIC_URL", { PUBLIC_URL: "console.example" }],
    ["AUDIT_URL", { AUDIT_URL: "http://localhost:7445" }],
    ["LICENSING_URL", { LICENSING_URL: "https://localhost:7443/api" }],
    ["SIGNING_KEYS_URL", { SIGNING_KEYS_URL: "not a url" }],
    ["FLEET_SWEEP_URL", { FLEET_SWEEP_URL: "https://user:pw@localhost:7446" }],
    ["OIDC_ISSUER", { OIDC_ISSUER: "http://idp.example", OIDC_CLIENT_SECRET: "s" }],
    ["OIDC_CLIENT_SECRET", { OIDC_ISSUER: "https://idp.example" }],
    ["OIDC_CLIENT_SECRET", { OIDC_CLIENT_SECRET: "a", OIDC_CLIENT_SECRET_FILE: "/x" }],
    ["OIDC_CLIENT_SECRET_FILE", { OIDC_CLIENT_SECRET_FILE: "/no/such/file" }],
    ["OIDC_CLIENT_ID", { OIDC_CLIENT_ID: "lcp console" }],
    ["OIDC_SCOPES", { OIDC_SCOPES: "profile email" }],
    ["OIDC_SCOPES", { OIDC_SCOPES: 'openid "x"' }],
    ["OIDC_CA_FILE", { OIDC_CA_FILE: "/no/such/ca.pem" }],
    ["SESSION_IDLE_TIMEOUT", { SESSION_IDLE_TIMEOUT: "soon" }],
    ["SESSION_IDLE_TIMEOUT", { SESSION_IDLE_TIMEOUT: "10s" }],
    ["SESSION_IDLE_TIMEOUT", { SESSION_IDLE_TIMEOUT: "2h", SESSION_MAX_AGE: "1h" }],
    ["SESSION_MAX_AGE", { SESSION_MAX_AGE: "60d" }],
    ["MAX_SESSIONS", { MAX_SESSIONS: "0" }],
    ["MAX_SESSIONS", { MAX_SESSIONS: "lots" }],
    ["LOG_LEVEL", { LOG_LEVEL: "loud" }],
    ["TLS_KEY_FILE", { TLS_CERT_FILE: "/a", TLS_CA_FILE: "/c" }],
    ["TLS_CERT_FILE", { NODE_ENV: "production", OIDC_ISSUER: "https://idp.example", OIDC_CLIENT_ID: "c", OIDC_CLIENT_SECRET: "s" }],
    ["OIDC_ISSUER", { NODE_ENV: "production", TLS_CERT_FILE: "/a", TLS_KEY_FILE: "/b", TLS_CA_FILE: "/c" }],
    ["OIDC_CLIENT_ID", { NODE_ENV: "production", TLS_CERT_FILE: "/a", TLS_KEY_FILE: "/b", TLS_CA_FILE: "/c", OIDC_ISSUER: "https://idp.example" }],
    ["SESSION_KEY", { NODE_ENV: "production", TLS_CERT_FILE: "/a", TLS_KEY_FILE: "/b", TLS_CA_FILE: "/c", OIDC_ISSUER: "https://idp.example", OIDC_CLIENT_ID: "c", OIDC_CLIENT_SECRET: "s" }],
    ["SESSION_KEY", { SESSION_KEY: "c2hvcnQ=" }],
    ["SESSION_KEY", { SESSION_KEY: "not base64!" }],
    ["SESSION_KEY_FILE", { SESSION_KEY: "00".repeat(32), SESSION_KEY_FILE: "/x" }],
    ["SESSION_KEY_FILE", { SESSION_KEY_FILE: "/no/such/key" }],
    ["DATABASE_URL", { DATABASE_URL: "mysql://db/console" }],
    ["DATABASE_URL", { DATABASE_URL: "not a url" }],
    ["ADMIN_PORT", { ADMIN_PORT: "0" }],
    ["ADMIN_PORT", { ADMIN_PORT: "7440" }],
    ["ADMIN_PORT", { ADMIN_PORT: "http" }],
    ["READINESS_INTERVAL", { READINESS_INTERVAL: "10ms" }],
  ] as const) {
    it(`refuses ${JSON.stringify(env)} naming ${variable}`, async () => {
      const err = await refusal(env);
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).variable).toBe(variable);
      expect((err as Error).message).toMatch(new RegExp(`^${variable}: `));
    });
  }

  it("never echoes a client secret it refuses", async () => {
    const err = (await refusal({ OIDC_CLIENT_SECRET: "sekrit\u0001value" })) as Error;
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).not.toContain("sekrit");
  });

  it("in development defaults to the dev identity provider, the dev CA and the dev PKI's console certificate", async () => {
    const config = await readConsoleConfig({ DATA_DIR: dir });
    expect(config.port).toBe(7440);
    expect(config.publicUrl).toBeUndefined();
    expect(config.oidc).toEqual({
      issuer: "https://localhost:7441",
      clientId: "lcp-console",
      clientSecret: { file: join(dir, "dev-idp", "console-client-secret") },
      caPem: config.tls.caPem,
      scopes: "openid profile",
      rolesClaim: "roles",
    });
    expect(config.tls.source).toBe("dev-pki");
    const cert = new X509Certificate(config.tls.certPem);
    expect(cert.checkIssued(new X509Certificate(config.tls.caPem))).toBe(true);
    expect(cert.subjectAltName).toContain("DNS:localhost");
    expect(config.upstreams).toEqual({
      licensing: "https://localhost:7443",
      signingKeys: "https://localhost:7444",
      audit: "https://localhost:7445",
      fleetSweep: "https://localhost:7446",
    });
    expect(config.sessionIdleTimeoutMs).toBe(30 * 60_000);
    expect(config.sessionMaxAgeMs).toBe(12 * 3_600_000);
    expect(config.maxSessions).toBe(10_000);
    expect(config.webRoot).toMatch(/apps\/console\/dist\/web$/);
  });

  it("reads a named issuer, its secret file and extra CA, and an origin-only PUBLIC_URL", async () => {
    await writeFile(join(dir, "secret"), "  s3cret \n");
    const config = await readConsoleConfig({
      DATA_DIR: dir,
      PUBLIC_URL: "https://console.example:8443/",
      OIDC_ISSUER: "https://idp.example/realms/lcp",
      OIDC_CLIENT_ID: "console",
      OIDC_CLIENT_SECRET_FILE: join(dir, "secret"),
      OIDC_CA_FILE: join(dir, "pki", "ca.crt"),
      OIDC_SCOPES: "openid  profile offline_access",
    });
    expect(config.publicUrl).toBe("https://console.example:8443");
    expect(config.oidc.issuer).toBe("https://idp.example/realms/lcp");
    expect(config.oidc.clientSecret).toEqual({ value: "s3cret" });
    expect(config.oidc.caPem).toContain("BEGIN CERTIFICATE");
    expect(config.oidc.scopes).toBe("openid profile offline_access");
  });

  it("a session key from SESSION_KEY (hex or base64) or SESSION_KEY_FILE; without one a 0600 development key that is kept", async () => {
    const hex = "ab".repeat(32);
    expect(await readConsoleConfig({ DATA_DIR: dir, SESSION_KEY: hex })).toMatchObject({ sessionKey: { kind: "configured", key: new Uint8Array(Buffer.from(hex, "hex")) } });
    await writeFile(join(dir, "session-key"), `${Buffer.alloc(32, 7).toString("base64")}\n`);
    expect((await readConsoleConfig({ DATA_DIR: dir, SESSION_KEY_FILE: join(dir, "session-key") })).sessionKey).toEqual({ kind: "configured", key: new Uint8Array(32).fill(7) });
    const dev = await readConsoleConfig({ DATA_DIR: dir });
    expect(dev.sessionKey).toEqual({ kind: "dev", dataDir: dir });
    const first = await loadOrCreateDevSessionKey(dir);
    expect(first).toHaveLength(32);
    expect((await stat(join(dir, DEV_SESSION_KEY_FILE))).mode & 0o777).toBe(0o600);
    expect(await loadOrCreateDevSessionKey(dir)).toEqual(first);
    // A damaged development key is refused naming the file, never replaced (sessions would all end).
    await writeFile(join(dir, DEV_SESSION_KEY_FILE), "short\n");
    await expect(loadOrCreateDevSessionKey(dir)).rejects.toThrow(/^DATA_DIR: .*console-session-key: the session key must be/);
  });

  it("main.ts exits 2 with one line naming the variable", async () => {
    const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, ["--conditions=source", "--import", "tsx", "apps/console/src/main.ts"], {
        env: { ...process.env, DATA_DIR: dir, AUDIT_URL: "http://nope" },
        stdio: ["ignore", "ignore", "pipe"],
      });
      let stderr = "";
      child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
      child.on("exit", (code) => resolve({ code, stderr }));
    });
    expect(result.code).toBe(2);
    expect(result.stderr.trim()).toBe("console: configuration error: AUDIT_URL: must be an https:// URL of the audit service, without a path");
  });

  it("main.ts starts with the development defaults (the issuer need not be up), says `console ready`, and exits 0 on SIGTERM", async () => {
    const child = spawn(process.execPath, ["--conditions=source", "--import", "tsx", "apps/console/src/main.ts"], {
      env: { ...process.env, DATA_DIR: dir, PORT: "0", LOG_LEVEL: "info" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    await new Promise<void>((resolve, reject) => {
      let out = "";
      child.stdout!.on("data", (c: Buffer) => {
        out += c.toString();
        if (out.includes('"msg":"console ready"')) resolve();
      });
      void exited.then((code) => reject(new Error(`exited ${code} before ready: ${out}`)));
    });
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  });
});
