/**
 * `TLS_TICKET_KEY_FILE` (licensing replicas sharing one TLS session-ticket secret) is validated at
 * start: a missing or malformed file fails fast naming the variable; without it the secret comes
 * from `<DATA_DIR>/tls-session-ticket.key`, created on first start — except with
 * `NODE_ENV=production`, where that generated secret is refused like the dev KEK and dev PKI.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, TICKET_SECRET_FILE } from "@lcp/rpc";
import { createTestPki } from "@lcp/testing/pki";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readLicensingConfig } from "../src/config.js";

describe("licensing's TLS session-ticket secret", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "lcp-licensing-ticket-"));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("refuses a TLS_TICKET_KEY_FILE that is missing or does not hold 48 bytes, naming it", async () => {
    const bad = join(dir, "bad.key");
    await writeFile(bad, "c2hvcnQ=\n", { mode: 0o600 });
    for (const file of [join(dir, "missing.key"), bad]) {
      const err = await readLicensingConfig({ DATA_DIR: join(dir, "data"), TLS_TICKET_KEY_FILE: file }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).variable).toBe("TLS_TICKET_KEY_FILE");
    }
  });

  it("refuses to start in production without TLS_TICKET_KEY_FILE, naming it, and starts with one", async () => {
    // Everything else production asks for is there: TLS files and an OIDC issuer.
    const pki = await createTestPki();
    const cert = await pki.service("licensing");
    const files = { TLS_CERT_FILE: cert.certPem, TLS_KEY_FILE: cert.keyPem, TLS_CA_FILE: pki.ca.certPem };
    const env: Record<string, string> = { NODE_ENV: "production", DATA_DIR: join(dir, "prod"), OIDC_ISSUER: "https://idp.example", OIDC_AUDIENCE: "lcp", OIDC_JWKS_URL: "https://idp.example/jwks" };
    for (const [variable, pem] of Object.entries(files)) {
      env[variable] = join(dir, `${variable}.pem`);
      await writeFile(env[variable], pem, { mode: 0o600 });
    }
    const err = await readLicensingConfig(env).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variable).toBe("TLS_TICKET_KEY_FILE");
    expect((err as Error).message).toMatch(/required when NODE_ENV=production/);
    await expect(stat(join(dir, "prod", TICKET_SECRET_FILE))).rejects.toThrow(/ENOENT/);

    const shared = join(dir, "shared.key");
    await writeFile(shared, `${randomBytes(48).toString("base64")}\n`, { mode: 0o600 });
    expect((await readLicensingConfig({ ...env, TLS_TICKET_KEY_FILE: shared })).sessionTicketSecret).toHaveLength(48);
  });

  it("reads the secret from the data dir when no file is named, the same on every start", async () => {
    const env = { DATA_DIR: join(dir, "data") };
    const first = await readLicensingConfig(env);
    expect(first.sessionTicketSecret).toHaveLength(48);
    expect((await readLicensingConfig(env)).sessionTicketSecret).toEqual(first.sessionTicketSecret);
  });
});
