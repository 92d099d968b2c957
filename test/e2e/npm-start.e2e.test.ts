/**
 * `npm start` as an operator meets it (docs/design.md §12): a fresh DATA_DIR gives four healthy
 * services on their fixed ports with the dev PKI, the endpoints and a ready grpcurl line are
 * printed, `buf curl --reflect` answers with no proto files, Ctrl-C stops all four cleanly, and a
 * second start reuses everything (PKI byte-identical, a licence made before still listed).
 *
 * This file owns ports 7443–7446; it fails with a clear message if anything else holds them.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeploymentKind } from "@lcp/proto/licensing/v1/types_pb";
import { LicensingService } from "@lcp/proto/licensing/v1/licensing_service_pb";
import { createAdminClient } from "@lcp/rpc";
import { ensureDevAdminIssuer } from "@lcp/tokens";
import { REPO_ROOT } from "../support/cluster.js";
import { BUF, hold, portIsFree, run, type Held } from "../support/processes.js";

const PORTS = { licensing: 7443, "signing-keys": 7444, audit: 7445, "fleet-sweep": 7446 } as const;
const READY = /Ctrl-C stops all four\./;

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

/** SHA-256 of every file in the PKI folder and the KEK, by name. */
function fingerprints(): Record<string, string> {
  const out: Record<string, string> = {};
  const pki = join(dataDir, "pki");
  for (const name of readdirSync(pki).sort()) out[`pki/${name}`] = createHash("sha256").update(readFileSync(join(pki, name))).digest("hex");
  out.kek = createHash("sha256").update(readFileSync(join(dataDir, "kek"))).digest("hex");
  return out;
}

async function licensingClient() {
  const issuer = await ensureDevAdminIssuer(join(dataDir, "pki"));
  const token = await issuer.mint({ subject: "e2e-operator", roles: ["support"], ttlSeconds: 600 });
  return createAdminClient(LicensingService, { baseUrl: `https://localhost:${PORTS.licensing}`, caPem: readFileSync(join(dataDir, "pki/ca.crt"), "utf8"), token });
}

async function allPortsFree(): Promise<string[]> {
  const busy: string[] = [];
  for (const [app, port] of Object.entries(PORTS)) if (!(await portIsFree(port))) busy.push(`${port} (${app})`);
  return busy;
}

describe("npm start", () => {
  let firstPki: Record<string, string>;
  let licenseId: string;

  beforeAll(async () => {
    const busy = await allPortsFree();
    if (busy.length > 0) {
      throw new Error(`npm-start e2e needs the fixed ports 7443–7446, but ${busy.join(", ")} ${busy.length > 1 ? "are" : "is"} in use (another npm start?)`);
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

  it("starts four healthy services on a fresh DATA_DIR and prints the endpoints and a grpcurl line", async () => {
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
  }, 110_000);

  it("answers the printed buf curl line for GetJwks through reflection, with no proto files", async () => {
    const res = await run(BUF, ["curl", "--cacert", join(dataDir, "pki/ca.crt"), "--reflect", "--protocol", "grpc", "https://localhost:7444/signing.v1.SigningKeyService/GetJwks"]);
    expect(res.stderr).toBe("");
    expect(res.code).toBe(0);
    const jwks = JSON.parse((JSON.parse(res.stdout) as { jwksJson: string }).jwksJson) as { keys: Array<{ kty: string; alg: string; kid: string }> };
    expect(jwks.keys.length).toBeGreaterThan(0);
    for (const key of jwks.keys) expect(key).toMatchObject({ kty: "OKP", alg: "EdDSA" });
  });

  it("serves an admin token minted by npm run token (the printed grpcurl line's token)", async () => {
    const token = await run(process.execPath, ["--conditions=source", "--import", "tsx", join(REPO_ROOT, "tools/token/main.ts"), "--role", "support"], {
      env: { ...process.env, DATA_DIR: dataDir },
    });
    expect(token.code).toBe(0);
    const res = await run(BUF, [
      "curl",
      "--cacert",
      join(dataDir, "pki/ca.crt"),
      "--reflect",
      "--protocol",
      "grpc",
      "-H",
      `authorization: Bearer ${token.stdout.trim()}`,
      "https://localhost:7443/licensing.v1.LicensingService/ListLicenses",
    ]);
    expect(res.stderr).toBe("");
    expect(JSON.parse(res.stdout)).toEqual({});

    // Something to find after the restart.
    const licensing = await licensingClient();
    const made = await licensing.provisionDeployment({ name: "npm-start-box", customer: "st-mary", kind: DeploymentKind.ON_PREM });
    licenseId = made.license!.id;
    expect(licenseId).not.toBe("");
    firstPki = fingerprints();
  });

  it("stops all four cleanly on Ctrl-C: exit 0 and every port free", async () => {
    const start = current!;
    ctrlC(start);
    const exit = await start.exited();
    expect(exit).toEqual({ code: 0, signal: null });
    expect(start.output()).toMatch(/stopping…[\s\S]*stopped\s*$/);
    expect(await allPortsFree()).toEqual([]);
  }, 40_000);

  it("reuses the data on a second start: PKI and KEK byte-identical, the licence still listed", async () => {
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
