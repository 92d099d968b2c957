/**
 * `npm start` as an operator meets it (docs/design.md §12): a fresh DATA_DIR gives the dev identity
 * provider and four healthy services on their fixed ports with the dev PKI, the endpoints, the dev
 * users and a ready grpcurl line are printed, `buf curl --reflect` answers with no proto files, a
 * token from `npm run token` (a sign-in at the dev identity provider) is accepted, Ctrl-C stops them
 * all cleanly, and a second start reuses everything (PKI, KEK and the identity provider's keys and
 * users byte-identical, a licence made before still listed).
 *
 * This file owns ports 7441 and 7443–7446; it fails with a clear message if anything else holds them.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeploymentKind } from "@lcp/proto/licensing/v1/types_pb";
import { LicensingService } from "@lcp/proto/licensing/v1/licensing_service_pb";
import { createAdminClient } from "@lcp/rpc";
import { REPO_ROOT } from "../support/cluster.js";
import { BUF, hold, portIsFree, run, type Held } from "../support/processes.js";

const PORTS = { "dev-idp": 7441, licensing: 7443, "signing-keys": 7444, audit: 7445, "fleet-sweep": 7446 } as const;
const CONSOLE_PORT = 7440;
const READY = /Ctrl-C stops them all\./;

let dataDir: string;
let current: Held | undefined;

/** `npm start` exactly as package.json runs it, in its own process group so Ctrl-C reaches the group. */
function npmStart(): Held {
  const env: NodeJS.ProcessEnv = { ...process.env, DATA_DIR: dataDir };
  delete env.DATABASE_URL;
  delete env.NODE_OPTIONS;
  current = hold(process.execPath, ["--conditions=source", "--import", "tsx", "tools/dev/start.ts"], { env, detached: true });
  return current;
}

/** What a terminal does on Ctrl-C: SIGINT to every process of the foreground group. */
function ctrlC(p: Held): void {
  process.kill(-p.child.pid!, "SIGINT");
}

/** SHA-256 of every file in the PKI folder, of the dev identity provider's state and of the KEK, by name. */
function fingerprints(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const folder of ["pki", "dev-idp"]) {
    const dir = join(dataDir, folder);
    for (const name of readdirSync(dir).sort()) out[`${folder}/${name}`] = createHash("sha256").update(readFileSync(join(dir, name))).digest("hex");
  }
  out.kek = createHash("sha256").update(readFileSync(join(dataDir, "kek"))).digest("hex");
  return out;
}

/** `npm run -s token -- --role <role>` against the running dev identity provider. */
async function npmToken(role: string): Promise<string> {
  const res = await run(process.execPath, ["--conditions=source", "--import", "tsx", join(REPO_ROOT, "tools/token/main.ts"), "--role", role], {
    env: { ...process.env, DATA_DIR: dataDir },
  });
  expect(res.stderr).toBe("");
  expect(res.code).toBe(0);
  return res.stdout.trim();
}

async function licensingClient() {
  const token = await npmToken("support");
  return createAdminClient(LicensingService, { baseUrl: `https://localhost:${PORTS.licensing}`, caPem: readFileSync(join(dataDir, "pki/ca.crt"), "utf8"), token });
}

/** The dev users as the dev identity provider keeps them. */
function devUsers(): Array<{ username: string; password: string; role: string }> {
  return (JSON.parse(readFileSync(join(dataDir, "dev-idp/users.json"), "utf8")) as { users: Array<{ username: string; password: string; role: string }> }).users;
}

async function allPortsFree(): Promise<string[]> {
  const busy: string[] = [];
  for (const [app, port] of [...Object.entries(PORTS), ["console", CONSOLE_PORT] as const]) if (!(await portIsFree(port))) busy.push(`${port} (${app})`);
  return busy;
}

describe("npm start", () => {
  let firstPki: Record<string, string>;
  let licenseId: string;

  beforeAll(async () => {
    const busy = await allPortsFree();
    if (busy.length > 0) {
      throw new Error(`npm-start e2e needs the fixed ports 7441 and 7443–7446, but ${busy.join(", ")} ${busy.length > 1 ? "are" : "is"} in use (another npm start?)`);
    }
    dataDir = mkdtempSync(join(tmpdir(), "lcp-npm-start-"));
  });

  afterAll(() => {
    if (current) {
      try {
        process.kill(-current.child.pid!, "SIGKILL");
      } catch {
        // already gone
      }
    }
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("starts the dev identity provider and four healthy services on a fresh DATA_DIR and prints the endpoints, the dev users and a grpcurl line", async () => {
    const start = npmStart();
    const out = await start.waitFor(READY, 100_000);
    expect(out).toContain(`created dev PKI in ${join(dataDir, "pki")}`);
    for (const [app, port] of Object.entries(PORTS)) expect(out).toMatch(new RegExp(`^\\s+${app}\\s+https://localhost:${port}\\s`, "m"));
    expect(out).toContain(
      `grpcurl -cacert ${join(dataDir, "pki/ca.crt")} -H "authorization: Bearer $(DATA_DIR=${dataDir} npm run -s token -- --role support)" localhost:7443 licensing.v1.LicensingService/ListLicenses`,
    );
    for (const file of ["ca.crt", ...Object.keys(PORTS).flatMap((app) => [`${app}.crt`, `${app}.key`])]) {
      expect(readdirSync(join(dataDir, "pki"))).toContain(file);
    }
    const users = devUsers();
    expect(users.map((u) => u.role).sort()).toEqual(["auditor", "onboarding", "super_admin", "support"]);
    for (const u of users) expect(out).toMatch(new RegExp(`^  ${u.role}\\s+user ${u.username}  password ${u.password}$`, "m"));
    // The apps trust the identity provider, not the old in-process dev issuer.
    expect(readdirSync(join(dataDir, "pki"))).not.toContain("admin-issuer.jwk");
  }, 110_000);

  it("prints the console's address, whose screens send a browser without a session to sign in at the dev identity provider", async () => {
    expect(current!.output()).toMatch(/^console https:\/\/localhost:7440\/licensing$/m);
    const caPem = readFileSync(join(dataDir, "pki/ca.crt"), "utf8");
    const get = (url: string) =>
      new Promise<{ status: number; location: string | undefined }>((done, fail) => {
        const req = httpsRequest(url, { ca: caPem }, (res) => {
          res.resume();
          done({ status: res.statusCode ?? 0, location: res.headers.location });
        });
        req.once("error", fail);
        req.end();
      });
    const screen = await get(`https://localhost:${CONSOLE_PORT}/licensing/audit`);
    expect(screen).toEqual({ status: 302, location: "/auth/login?return=%2Flicensing%2Faudit" });
    const login = await get(`https://localhost:${CONSOLE_PORT}${screen.location}`);
    expect(login.status).toBe(302);
    expect(login.location).toMatch(/^https:\/\/localhost:7441\/auth\?.*code_challenge_method=S256/);
  });

  it("answers the printed buf curl line for GetJwks through reflection, with no proto files", async () => {
    const res = await run(BUF, ["curl", "--cacert", join(dataDir, "pki/ca.crt"), "--reflect", "--protocol", "grpc", "https://localhost:7444/signing.v1.SigningKeyService/GetJwks"]);
    expect(res.stderr).toBe("");
    expect(res.code).toBe(0);
    const jwks = JSON.parse((JSON.parse(res.stdout) as { jwksJson: string }).jwksJson) as { keys: Array<{ kty: string; alg: string; kid: string }> };
    expect(jwks.keys.length).toBeGreaterThan(0);
    for (const key of jwks.keys) expect(key).toMatchObject({ kty: "OKP", alg: "EdDSA" });
  });

  it("serves an admin token npm run token got by signing in to the dev identity provider (the printed grpcurl line's token)", async () => {
    const token = await npmToken("support");
    const res = await run(BUF, [
      "curl",
      "--cacert",
      join(dataDir, "pki/ca.crt"),
      "--reflect",
      "--protocol",
      "grpc",
      "-H",
      `authorization: Bearer ${token}`,
      "https://localhost:7443/licensing.v1.LicensingService/ListLicenses",
    ]);
    expect(res.stderr).toBe("");
    expect(JSON.parse(res.stdout)).toEqual({});

    // A role the call does not allow is refused with the role's own token.
    const onboarding = await npmToken("onboarding");
    const denied = await run(BUF, [
      "curl",
      "--cacert",
      join(dataDir, "pki/ca.crt"),
      "--reflect",
      "--protocol",
      "grpc",
      "-H",
      `authorization: Bearer ${onboarding}`,
      "-d",
      '{"licenseId":"00000000-0000-7000-8000-000000000000","reason":"x"}',
      "https://localhost:7443/licensing.v1.LicensingService/RevokeLicense",
    ]);
    expect(denied.stderr).toContain('"code": "permission_denied"');

    // Something to find after the restart.
    const licensing = await licensingClient();
    const made = await licensing.provisionDeployment({ name: "npm-start-box", customer: "st-mary", kind: DeploymentKind.ON_PREM });
    licenseId = made.license!.id;
    expect(licenseId).not.toBe("");
    firstPki = fingerprints();
  });

  it("stops them all cleanly on Ctrl-C: exit 0 and every port free", async () => {
    const start = current!;
    ctrlC(start);
    const exit = await start.exited();
    expect(exit).toEqual({ code: 0, signal: null });
    expect(start.output()).toMatch(/stopping…[\s\S]*stopped\s*$/);
    expect(await allPortsFree()).toEqual([]);
  }, 40_000);

  it("reuses the data on a second start: PKI, KEK and the identity provider's state byte-identical, the licence still listed", async () => {
    const start = npmStart();
    const out = await start.waitFor(READY, 100_000);
    expect(out).toContain(`reusing dev PKI in ${join(dataDir, "pki")}`);
    expect(fingerprints()).toEqual(firstPki);

    const licensing = await licensingClient();
    const { licenses } = await licensing.listLicenses({});
    expect(licenses.map((l) => l.id)).toContain(licenseId);

    ctrlC(start);
    expect(await start.exited()).toEqual({ code: 0, signal: null });
    expect(await allPortsFree()).toEqual([]);
  }, 140_000);

  it("refuses NODE_ENV=production with a sentence, before writing anything", async () => {
    const fresh = mkdtempSync(join(tmpdir(), "lcp-npm-start-prod-"));
    try {
      const res = await run(process.execPath, ["--conditions=source", "--import", "tsx", "tools/dev/start.ts"], { env: { ...process.env, DATA_DIR: fresh, NODE_ENV: "production" } });
      expect(res.code).toBe(2);
      expect(res.stderr).toContain("npm start runs the development control plane");
      expect(res.stderr).toContain("never runs with NODE_ENV=production");
      expect(readdirSync(fresh)).toEqual([]);
    } finally {
      rmSync(fresh, { recursive: true, force: true });
    }
  });

  it("refuses to start with a clear message while another process holds a port", async () => {
    const { createServer } = await import("node:net");
    const squatter = createServer();
    await new Promise<void>((done) => squatter.listen(PORTS.audit, "127.0.0.1", done));
    try {
      const start = npmStart();
      const exit = await start.exited();
      expect(exit.code).toBe(1);
      expect(start.output()).toContain("7445 (audit) already in use");
      expect(start.output()).not.toContain("created dev PKI");
    } finally {
      await new Promise((done) => squatter.close(done));
    }
  }, 30_000);
});
