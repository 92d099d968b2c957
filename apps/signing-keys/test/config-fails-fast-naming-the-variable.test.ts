/**
 * Configuration: KEK from KEK or KEK_FILE (never both), a generated development KEK only outside
 * production, TOKEN_ISSUER and AUDIT_URL validated — every mistake fails at start naming its
 * variable, without echoing a secret.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "@lcp/rpc";
import { afterAll, describe, expect, it } from "vitest";
import { DEFAULT_PORT, DEFAULT_TOKEN_ISSUER, readSigningKeysConfig } from "../src/config.js";
import { startSigningKeys } from "../src/app.js";

const dirs: string[] = [];
const dataDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "lcp-signing-keys-config-"));
  dirs.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

async function refusal(env: NodeJS.ProcessEnv): Promise<ConfigError> {
  const error = await readSigningKeysConfig(env).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(ConfigError);
  return error as ConfigError;
}

describe("signing-keys configuration", () => {
  const kekHex = randomBytes(32).toString("hex");

  it("refuses to start in production without a KEK", async () => {
    expect((await refusal({ NODE_ENV: "production", DATA_DIR: dataDir() })).variable).toBe("KEK");
  });

  it("refuses KEK and KEK_FILE together, and a malformed KEK without echoing it", async () => {
    expect((await refusal({ KEK: kekHex, KEK_FILE: "/nope", DATA_DIR: dataDir() })).variable).toBe("KEK_FILE");
    const bad = await refusal({ KEK: "c2VjcmV0LXRvby1zaG9ydA==", DATA_DIR: dataDir() });
    expect(bad.variable).toBe("KEK");
    expect(bad.message).not.toContain("c2VjcmV0LXRvby1zaG9ydA==");
    expect((await refusal({ KEK_FILE: "/does/not/exist", DATA_DIR: dataDir() })).variable).toBe("KEK_FILE");
  });

  it("refuses a TOKEN_ISSUER that is not a URL and an AUDIT_URL that is not https", async () => {
    expect((await refusal({ TOKEN_ISSUER: "not a url", DATA_DIR: dataDir() })).variable).toBe("TOKEN_ISSUER");
    expect((await refusal({ AUDIT_URL: "http://audit:7445", DATA_DIR: dataDir() })).variable).toBe("AUDIT_URL");
  });

  it("reads KEK (hex or base64) or KEK_FILE, and defaults the rest", async () => {
    const dir = dataDir();
    const fromHex = await readSigningKeysConfig({ KEK: kekHex, DATA_DIR: dir });
    expect(fromHex.kek).toEqual({ kind: "configured", key: new Uint8Array(Buffer.from(kekHex, "hex")) });
    expect(fromHex.port).toBe(DEFAULT_PORT);
    expect(fromHex.tokenIssuer).toBe(DEFAULT_TOKEN_ISSUER);
    expect(fromHex.auditUrl).toBeUndefined();
    const file = join(dir, "kek.b64");
    writeFileSync(file, `${Buffer.from(kekHex, "hex").toString("base64")}\n`, { mode: 0o600 });
    const fromFile = await readSigningKeysConfig({ KEK_FILE: file, DATA_DIR: dir, AUDIT_URL: "https://localhost:7445" });
    expect(fromFile.kek).toEqual(fromHex.kek);
    expect(fromFile.auditUrl).toBe("https://localhost:7445");
  });

  it("generates the development KEK into DATA_DIR (mode 0600) and starts with it", async () => {
    const dir = dataDir();
    const config = await readSigningKeysConfig({ DATA_DIR: dir, PORT: "0", LOG_LEVEL: "silent" });
    expect(config.kek).toEqual({ kind: "dev", dataDir: dir });
    const app = await startSigningKeys(config);
    try {
      expect(statSync(join(dir, "kek")).mode & 0o777).toBe(0o600);
      expect(app.port).toBeGreaterThan(0);
    } finally {
      await app.close();
    }
  });
});
