import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createAdminTokenVerifier } from "@lcp/tokens";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEV_IDP_AUDIENCE, readDevUsers } from "../provider.js";
import { signInAs } from "../sign-in.js";
import { childEnv, run, start } from "./processes.js";

const MAIN = "tools/dev-idp/main.ts";

describe("tools/dev-idp/main.ts (the process npm start runs)", () => {
  let dataDir: string;
  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "lcp-dev-idp-main-"));
  });
  afterAll(() => rm(dataDir, { recursive: true, force: true }));

  it("makes its certificate and state under DATA_DIR, prints the issuer and every user, serves sign-ins, and exits 0 on SIGTERM", async () => {
    const idp = start(MAIN, [], childEnv({ DATA_DIR: dataDir, PORT: "0", LOG_LEVEL: "info" }));
    try {
      const out = await idp.waitFor(/dev-idp ready/);
      const issuer = /^dev identity provider (https:\/\/localhost:\d+)$/m.exec(out)?.[1];
      expect(issuer).toBeDefined();
      const users = await readDevUsers(join(dataDir, "dev-idp"));
      for (const u of users) expect(out).toContain(`\n  ${u.role}  user ${u.username}  password ${u.password}\n`);
      expect(out).toMatch(/"msg":"dev-idp ready"/);

      const caPem = await readFile(join(dataDir, "pki", "ca.crt"), "utf8");
      const auditor = users.find((u) => u.role === "auditor")!;
      const { accessToken } = await signInAs({ issuer: issuer!, caPem, username: auditor.username, password: auditor.password });
      const verdict = await createAdminTokenVerifier({ issuer: issuer!, audience: DEV_IDP_AUDIENCE, jwks: new URL(`${issuer}/jwks`), jwksCaPem: caPem }).verify(accessToken);
      expect(verdict).toMatchObject({ ok: true, subject: "auditor", roles: ["auditor"] });
    } finally {
      idp.child.kill("SIGTERM");
    }
    expect(await idp.exited()).toMatchObject({ code: 0, signal: null });
  }, 90_000);

  it("exits 2 with one line naming the variable on a refused configuration, production included", async () => {
    const cases: Array<[Record<string, string>, string]> = [
      [{ PORT: "web" }, "dev-idp: configuration error: PORT: "],
      [{ CONSOLE_URL: "http://localhost:7440" }, "dev-idp: configuration error: CONSOLE_URL: must be the console's https origin"],
      [{ NODE_ENV: "production" }, "dev-idp: configuration error: NODE_ENV: the development identity provider never runs in production"],
    ];
    for (const [env, line] of cases) {
      const res = await run(MAIN, [], childEnv({ DATA_DIR: dataDir, PORT: "0", ...env }));
      expect(res.code, line).toBe(2);
      expect(res.stderr.startsWith(line), res.stderr).toBe(true);
      expect(res.stderr.trim().split("\n")).toHaveLength(1);
      expect(res.stdout).toBe("");
    }
  }, 90_000);
});
