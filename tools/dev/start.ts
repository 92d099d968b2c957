/**
 * `npm start`: the whole control plane on one machine. Four processes (one per app, each its own
 * port and SQLite database under DATA_DIR), the dev PKI, admin-token issuer and key-encryption
 * key made on first run and reused after. Prints each endpoint and a ready grpcurl line; Ctrl-C
 * stops all four cleanly.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import { DEV_PKI_SERVICES, ensureDevPki } from "@lcp/pki";
import { HealthCheckRequestSchema, HealthCheckResponse_ServingStatus, Health } from "@lcp/proto/grpc/health/v1/health_pb";
import { createClient } from "@lcp/rpc";
import { ensureDevAdminIssuer, loadOrCreateDevKek } from "@lcp/tokens";

const repoRoot = resolve(fileURLToPath(import.meta.url), "../../..");
const dataDir = resolve(process.env.DATA_DIR ?? "./data");
const host = process.env.HOST ?? "127.0.0.1";

/** The apps in start order: licensing needs signing-keys' trust bundle, fleet-sweep needs licensing. */
const APPS = [
  { name: "signing-keys", port: 7444 },
  { name: "audit", port: 7445 },
  { name: "licensing", port: 7443 },
  { name: "fleet-sweep", port: 7446 },
] as const;

const url = (port: number) => `https://localhost:${port}`;
const portOf = (name: string) => APPS.find((a) => a.name === name)!.port;

async function main(): Promise<void> {
  // Made here, once, before any app starts, so four processes never race to create them.
  const pki = await ensureDevPki({ dir: join(dataDir, "pki"), services: [...DEV_PKI_SERVICES] });
  await ensureDevAdminIssuer(join(dataDir, "pki"));
  await loadOrCreateDevKek(dataDir);
  console.log(`${pki.created ? "created" : "reusing"} dev PKI in ${join(dataDir, "pki")}`);

  const children = new Map<string, ChildProcess>();
  let stopping = false;

  const stopAll = async (code: number): Promise<never> => {
    if (!stopping) {
      stopping = true;
      console.log("stopping…");
      await Promise.all(
        [...children.values()].reverse().map(
          (child) =>
            new Promise<void>((done) => {
              if (child.exitCode !== null || child.signalCode !== null) return done();
              const kill = setTimeout(() => child.kill("SIGKILL"), 15_000);
              child.once("exit", () => {
                clearTimeout(kill);
                done();
              });
              child.kill("SIGTERM");
            }),
        ),
      );
      console.log("stopped");
    }
    process.exit(code);
  };
  process.once("SIGINT", () => void stopAll(0));
  process.once("SIGTERM", () => void stopAll(0));

  for (const app of APPS) {
    const child = spawn(process.execPath, ["--conditions=source", "--import", "tsx", join(repoRoot, "apps", app.name, "src/main.ts")], {
      cwd: repoRoot,
      env: {
        ...process.env,
        DATA_DIR: dataDir,
        HOST: host,
        PORT: String(app.port),
        SIGNING_KEYS_URL: url(portOf("signing-keys")),
        AUDIT_URL: url(portOf("audit")),
        LICENSING_URL: url(portOf("licensing")),
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.set(app.name, child);
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on("line", (line) => console.log(`[${app.name}] ${line}`));
    }
    child.once("exit", (code, signal) => {
      if (stopping) return;
      console.error(`${app.name} exited (${signal ?? `code ${code}`}); stopping the others`);
      void stopAll(1);
    });
    await waitServing(app.name, app.port, pki.caCertPem);
  }

  const ca = join(dataDir, "pki", "ca.crt");
  console.log(`
control plane ready (data in ${dataDir})
  licensing     ${url(7443)}   licensing.v1.LicensingService, ApplianceService, ReconcileService
  signing-keys  ${url(7444)}   signing.v1.SigningKeyService
  audit         ${url(7445)}   audit.v1.AuditService
  fleet-sweep   ${url(7446)}   fleet.v1.FleetSweepService

try:
  grpcurl -cacert ${ca} -H "authorization: Bearer $(npm run -s token -- --role support)" localhost:7443 licensing.v1.LicensingService/ListLicenses
  grpcurl -cacert ${ca} localhost:7444 signing.v1.SigningKeyService/GetJwks
  npx buf curl --cacert ${ca} --reflect --list-methods https://localhost:7443
Ctrl-C stops all four.`);
}

/** Polls grpc.health.v1 Check until the app says SERVING (60 s at most). */
async function waitServing(name: string, port: number, caPem: string): Promise<void> {
  const health = createClient(Health, { baseUrl: url(port), tls: { caPem }, timeoutMs: 1_000, retries: 0 });
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const res = await health.check(create(HealthCheckRequestSchema, { service: "" }));
      if (res.status === HealthCheckResponse_ServingStatus.SERVING) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${name} did not become healthy on port ${port} within 60 s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

await main().catch((err: unknown) => {
  console.error("npm start failed:", err instanceof Error ? err.message : err);
  process.exit(1);
});
