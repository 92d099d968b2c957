import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createAdminTokenVerifier } from "@lcp/tokens";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEV_IDP_STATE_DIR } from "../provider.js";
import { childEnv, run } from "./processes.js";
import { startTestIdp, type TestIdp } from "./support.js";

const TOKEN = "tools/token/main.ts";

/** A port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address() as { port: number };
  await new Promise((done) => server.close(done));
  return port;
}

describe("npm run token", () => {
  let dataDir: string;
  let t: TestIdp;
  beforeAll(async () => {
    // npm start's layout: the provider's state in $DATA_DIR/dev-idp, the CA in $DATA_DIR/pki/ca.crt.
    dataDir = await mkdtemp(join(tmpdir(), "lcp-token-cli-"));
    t = await startTestIdp({ stateDir: join(dataDir, DEV_IDP_STATE_DIR) });
    await mkdir(join(dataDir, "pki"));
    await writeFile(join(dataDir, "pki", "ca.crt"), t.caPem);
  });
  afterAll(async () => {
    await t?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  const token = (args: string[], env: Record<string, string> = {}) => run(TOKEN, args, childEnv({ DATA_DIR: dataDir, OIDC_ISSUER: t.idp.issuer, ...env }));

  it("prints only an access token of the dev user of the role, which the admin verifier accepts", async () => {
    const out = await token(["--role", "super_admin"]);
    expect(out.stderr).toBe("");
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    const verifier = createAdminTokenVerifier({ issuer: t.idp.issuer, audience: t.idp.audience, jwks: new URL(t.idp.jwksUrl), jwksCaPem: t.caPem });
    expect(await verifier.verify(out.stdout.trim())).toMatchObject({ ok: true, subject: "super_admin", roles: ["super_admin"] });
  }, 60_000);

  it("refuses bad usage with exit code 2, a reason on stderr and nothing on stdout", async () => {
    const cases: Array<[string[], string]> = [
      [[], "--role is required (one of: onboarding, support, super_admin, auditor)"],
      [["--role", "root"], 'unknown role "root"; known roles: onboarding, support, super_admin, auditor'],
      [["--role", "support", "--role", "auditor"], "--role may be given once: each dev user has exactly one role"],
      [["--role", "support", "--ttl", "15m"], "--ttl is no longer accepted: the identity provider sets the lifetime"],
      [["--role", "support", "--subject", "carol"], "--subject is no longer accepted: the subject is the dev user of the role"],
      [["--bogus"], "Unknown option '--bogus'"],
    ];
    for (const [args, reason] of cases) {
      const out = await token(args);
      expect(out.code, args.join(" ")).toBe(2);
      expect(out.stdout).toBe("");
      expect(out.stderr.startsWith(`token: ${reason}`), out.stderr).toBe(true);
      expect(out.stderr).toContain("Run with --help for usage.");
    }
  }, 90_000);

  it("says to start npm start when the provider is not running or was never set up", async () => {
    const down = await token(["--role", "support"], { OIDC_ISSUER: `https://localhost:${await closedPort()}` });
    expect(down.code).toBe(2);
    expect(down.stdout).toBe("");
    expect(down.stderr).toMatch(/^token: the dev identity provider at https:\/\/localhost:\d+ is not running \(.*ECONNREFUSED.*\); start it with npm start\n$/);

    const empty = await mkdtemp(join(tmpdir(), "lcp-token-empty-"));
    try {
      const none = await token(["--role", "support"], { DATA_DIR: empty });
      expect(none.code).toBe(2);
      expect(none.stdout).toBe("");
      expect(none.stderr).toBe(`token: no dev users in ${join(empty, DEV_IDP_STATE_DIR)}: the dev identity provider is not set up; start it with npm start\n`);
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  }, 60_000);

  it("explains --role in --help", async () => {
    const out = await token(["--help"]);
    expect(out.code).toBe(0);
    expect(out.stdout).toContain("--role <role>   exactly one of: onboarding, support, super_admin, auditor");
    expect(out.stdout).toContain("Each dev user has one role, so a token carries one role.");
  }, 30_000);
});
