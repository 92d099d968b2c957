/**
 * The production image, reproduced without a container runtime (test/support/image.ts): the
 * checkout is built (`npm run build`), the Dockerfile's runtime stage is assembled in a scratch
 * folder with production dependencies only, and every app starts from its built JavaScript with
 * `NODE_ENV=production` against PostgreSQL — TLS, KEK and ticket-key files as the manifests mount
 * them, the OIDC issuer given by configuration, two replicas of licensing and of audit behind a
 * round-robin proxy each. The seed's whole story runs there; then a directive is sent through
 * the replica that does not hold the box's stream, the two audit replicas are shown to have
 * appended one gapless chain, the admin ports answer kubelet's probes, and the image's files are
 * shown unchanged (a read-only root filesystem would have done).
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { AuditService } from "@lcp/proto/audit/v1/audit_service_pb";
import { LicensingService } from "@lcp/proto/licensing/v1/licensing_service_pb";
import { DeploymentKind } from "@lcp/proto/licensing/v1/types_pb";
import { createAdminClient } from "@lcp/rpc";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePorts, REPO_ROOT, startCluster } from "../support/cluster.js";
import { assembleImage, type ImageRuntime } from "../support/image.js";
import { hold, run, type Held } from "../support/processes.js";
import { theSeedStory } from "../support/seed-story.js";
import { applianceFor, auditTrail, eventually, FAST_SETTINGS, heartbeatOf, nextDirective } from "../support/story.js";

const databaseUrl = process.env.DATABASE_URL;

/** Every file under `dir` with its size and content hash (node_modules by size and mtime only). */
function snapshot(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (path: string, rel: string) => {
    for (const entry of readdirSync(path, { withFileTypes: true })) {
      const full = join(path, entry.name);
      const name = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) walk(full, name);
      else if (entry.isFile()) {
        const st = statSync(full);
        files.set(name, name.startsWith("node_modules/") ? `${st.size}:${st.mtimeMs}` : createHash("sha256").update(readFileSync(full)).digest("hex"));
      } else files.set(name, "link");
    }
  };
  walk(dir, "");
  return files;
}

describe.skipIf(databaseUrl === undefined)("the production image on PostgreSQL, licensing and audit replicated", () => {
  const scratch = mkdtempSync(join(tmpdir(), "lcp-image-"));
  const imageDir = join(scratch, "app");
  let runtime: ImageRuntime;
  let before: Map<string, string>;
  let consolePorts: number[] = [];
  let console: Held | undefined;

  beforeAll(async () => {
    // nx's cache makes this quick when `npm test` (or anyone) built the same sources already.
    const built = await run("npm", ["run", "-s", "build"], { timeoutMs: 600_000, env: { ...process.env, NX_DAEMON: "false" } });
    expect(built.code, built.stdout + built.stderr).toBe(0);
    runtime = assembleImage(imageDir);
    before = snapshot(imageDir);
    consolePorts = await freePorts(2);
  }, 620_000);
  afterAll(async () => {
    console?.kill();
    await console?.exited();
    rmSync(scratch, { recursive: true, force: true });
  });

  // A replica that does not hold a box's stream sees its beats as of the holder's last batched
  // write, so the heartbeat timeout leaves room for one flush beyond the interval.
  const cluster = theSeedStory(
    () =>
      startCluster({
        databaseUrl,
        image: { dir: imageDir, runtime },
        replicas: { licensing: 2, audit: 2 },
        adminPorts: true,
        consoleUrl: `https://localhost:${consolePorts[0]}`,
        startTimeoutMs: 90_000,
      }),
    { ...FAST_SETTINGS, heartbeatTimeoutMs: 4_000, graceWindowMs: 10_000 },
  );

  it("a directive sent through the other licensing replica reaches the box on its stream", async () => {
    const c = cluster();
    const [one, two] = c.replicaUrls.licensing as [string, string];
    const onboarding = createAdminClient(LicensingService, { baseUrl: one, caPem: c.caPem, token: () => c.adminToken("onboarding") });
    const provisioned = await onboarding.provisionDeployment({ name: "replica-crossing", customer: "st-mary", kind: DeploymentKind.ON_PREM });
    const license = provisioned.license!;
    const box = await applianceFor(c, license, "box-crossing");
    try {
      await box.activate();
      box.start();
      const beat = await eventually("the box's stream", async () => {
        const row = await heartbeatOf(c, provisioned.deployment!.id);
        return row?.connected ? row : undefined;
      });
      expect(["licensing-1", "licensing-2"]).toContain(beat.replica);
      // Through the replica that does not hold the stream.
      const other = beat.replica === "licensing-1" ? two : one;
      const support = createAdminClient(LicensingService, { baseUrl: other, caPem: c.caPem, token: () => c.adminToken("support") });
      const locked = nextDirective(box, "LOCK");
      await support.revokeLicense({ licenseId: license.id, reason: "crossing replicas" });
      await locked;
    } finally {
      await box.stop();
    }
  });

  it("both audit replicas appended to one chain: gapless, and it verifies", async () => {
    const c = cluster();
    const trail = await auditTrail(c);
    expect(trail.length).toBeGreaterThan(20);
    expect(trail.map((e) => Number(e.seq))).toEqual(trail.map((_, i) => i + 1));
    for (const url of c.replicaUrls.audit) {
      const audit = createAdminClient(AuditService, { baseUrl: url, caPem: c.caPem, token: () => c.adminToken("auditor") });
      const verdict = await audit.verifyChain({});
      expect(verdict.ok, url).toBe(true);
    }
  });

  it("every app's admin port answers kubelet's probes: gRPC health over h2c, /healthz and /readyz", async () => {
    const def = protoLoader.loadSync(join(REPO_ROOT, "node_modules/grpc-health-check/proto/health/v1/health.proto"), { enums: String });
    const pkg = grpc.loadPackageDefinition(def) as unknown as { grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } } };
    const ports = Object.entries(cluster().adminPorts).flatMap(([app, list]) => list.map((port, i) => [`${app}#${i + 1}`, port] as const));
    expect(ports).toHaveLength(6);
    for (const [app, port] of ports) {
      const health = new pkg.grpc.health.v1.Health(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
      const status = await new Promise<string>((done, fail) =>
        (health as unknown as { Check: (r: object, o: object, cb: (e: Error | null, r: { status: string }) => void) => void }).Check(
          { service: "" },
          { deadline: Date.now() + 5_000 },
          (err, res) => (err ? fail(err) : done(res.status)),
        ),
      );
      health.close();
      expect(status, app).toBe("SERVING");
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status, app).toBe(200);
      expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status, app).toBe(200);
    }
  });

  it("the console starts from the image on the shared database: ready, its assets served, sign-in sent to the configured issuer", async () => {
    const c = cluster();
    const [port, adminPort] = consolePorts as [number, number];
    const pki = join(c.dataDir, "pki");
    const sessionKey = join(c.dataDir, "secrets", "console-session.key");
    writeFileSync(sessionKey, randomBytes(32).toString("base64"), { mode: 0o400 });
    console = hold(process.execPath, [...runtime.entrypoint.slice(1), "apps/console/dist/main.js"], {
      cwd: imageDir,
      env: {
        ...c.env,
        PORT: String(port),
        ADMIN_PORT: String(adminPort),
        PUBLIC_URL: `https://localhost:${port}`,
        TLS_CERT_FILE: join(pki, "console.crt"),
        TLS_KEY_FILE: join(pki, "console.key"),
        TLS_CA_FILE: join(pki, "ca.crt"),
        LICENSING_URL: c.urls.licensing,
        SIGNING_KEYS_URL: c.urls["signing-keys"],
        AUDIT_URL: c.urls.audit,
        FLEET_SWEEP_URL: c.urls["fleet-sweep"],
        OIDC_CLIENT_ID: "lcp-console",
        OIDC_CLIENT_SECRET_FILE: join(c.dataDir, "dev-idp", "console-client-secret"),
        SESSION_KEY_FILE: sessionKey,
        LOG_LEVEL: "info",
      },
    });
    await console.waitFor(/console ready/, 60_000);
    expect((await fetch(`http://127.0.0.1:${adminPort}/readyz`)).status).toBe(200);
    const get = (path: string) =>
      new Promise<{ status: number; location: string | undefined; type: string | undefined }>((done, fail) => {
        const req = httpsRequest(`https://localhost:${port}${path}`, { ca: c.caPem }, (res) => {
          res.resume();
          done({ status: res.statusCode ?? 0, location: res.headers.location, type: res.headers["content-type"] });
        });
        req.once("error", fail);
        req.end();
      });
    const screen = await get("/licensing/audit");
    expect(screen).toMatchObject({ status: 302, location: "/auth/login?return=%2Flicensing%2Faudit" });
    const login = await get(screen.location!);
    expect(login.status).toBe(302);
    expect(login.location!.startsWith(`${c.env.OIDC_ISSUER}/auth?`)).toBe(true);
    expect(login.location).toMatch(/code_challenge_method=S256/);
    // The built single-page app: its entry script is one of the hashed assets the build wrote.
    const asset = readdirSync(join(imageDir, "apps/console/dist/web/assets")).find((f) => f.endsWith(".js"))!;
    expect(await get(`/assets/${asset}`)).toMatchObject({ status: 200, type: expect.stringMatching(/javascript/) });
  }, 90_000);

  it("wrote nothing into the image: a read-only root filesystem would have done", () => {
    const after = snapshot(imageDir);
    const changed = [...new Set([...before.keys(), ...after.keys()])].filter((f) => before.get(f) !== after.get(f));
    expect(changed).toEqual([]);
  });
});
