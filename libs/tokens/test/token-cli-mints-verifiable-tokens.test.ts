import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAdminTokenVerifier, ensureDevAdminIssuer } from "../src/index.js";

const run = promisify(execFile);
const REPO = resolve(import.meta.dirname, "../../..");

// The same command line as `npm run token`, without npm's own output in the way.
async function token(args: string[], dataDir: string): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ["--conditions=source", "--import", "tsx", "tools/token/main.ts", ...args], {
      cwd: REPO,
      env: { ...process.env, DATA_DIR: dataDir },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe("npm run token", () => {
  let dataDir: string;
  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "lcp-token-cli-"));
  });
  afterAll(() => rm(dataDir, { recursive: true, force: true }));

  it("prints only a token that the admin verifier accepts", async () => {
    const out = await token(["--role", "support", "--role", "auditor", "--ttl", "15m", "--subject", "carol"], dataDir);
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    const issuer = await ensureDevAdminIssuer(join(dataDir, "pki"));
    const verifier = createAdminTokenVerifier({ issuer: issuer.issuer, audience: issuer.audience, jwks: issuer.jwks });
    const verdict = await verifier.verify(out.stdout.trim());
    expect(verdict).toMatchObject({ ok: true, subject: "carol", roles: ["support", "auditor"] });
    if (verdict.ok) {
      const ttl = verdict.expiresAt.getTime() - Date.now();
      expect(ttl).toBeGreaterThan(14 * 60_000);
      expect(ttl).toBeLessThanOrEqual(15 * 60_000);
    }
  });

  it("refuses an unknown role, a bad ttl and a missing role with exit code 2 and nothing on stdout", async () => {
    for (const args of [["--role", "root"], ["--role", "support", "--ttl", "2d"], ["--role", "support", "--ttl", "soon"], [], ["--bogus"]]) {
      const out = await token(args, dataDir);
      expect(out.code, args.join(" ")).toBe(2);
      expect(out.stdout).toBe("");
      expect(out.stderr).toMatch(/^token: /);
    }
    expect((await token(["--role", "root"], dataDir)).stderr).toContain("known roles: onboarding, support, super_admin, auditor");
  });

  it("prints help", async () => {
    const out = await token(["--help"], dataDir);
    expect(out.code).toBe(0);
    expect(out.stdout).toContain("--role <role>");
  });
});
