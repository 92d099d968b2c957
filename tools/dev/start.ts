/**
 * `npm start`: the whole control plane on one machine. Four processes (one per app, each its own
 * port and SQLite database under DATA_DIR, or its own schema when DATABASE_URL names a
 * PostgreSQL), the dev PKI, admin-token issuer and key-encryption key made on first run and
 * reused after. Prints each endpoint and ready grpcurl / buf curl lines; Ctrl-C stops all four.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import { join, relative, resolve } from "node:path";
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

/** The four apps on their fixed ports (docs/design.md §12). */
const APPS = [
  { name: "signing-keys", port: 7444 },
  { name: "audit", port: 7445 },
  { name: "licensing", port: 7443 },
  { name: "fleet-sweep", port: 7446 },
] as const;

const url = (port: number) => `https://localhost:${port}`;
const portOf = (name: string) => APPS.find((a) => a.name === name)!.port;

const children = new Map<string, ChildProcess>();
let stopping = false;

/** Stops every app (SIGTERM, SIGKILL after 15 s) and exits with `code`. */
const stopAll = async (code: number): Promise<never> => {
  if (!stopping) {
    stopping = true;
    console.log("stopping…");
    // Consumers first (fleet-sweep, licensing), so none logs errors about a dependency that left.
    for (const name of ["fleet-sweep", "licensing", "signing-keys", "audit"]) {
      const child = children.get(name);
      if (!child) continue;
      await new Promise<void>((done) => {
        if (child.exitCode !== null || child.signalCode !== null) return done();
        const kill = setTimeout(() => child.kill("SIGKILL"), 15_000);
        child.once("exit", () => {
          clearTimeout(kill);
          done();
        });
        child.kill("SIGTERM");
      });
    }
    console.log("stopped");
  }
  process.exit(code);
};

async function main(): Promise<void> {
  // Before anything is written: a second `npm start` (or anything else on our ports) must fail
  // with a sentence, not with four apps dying of EADDRINUSE in interleaved logs.
  const busy = await busyPorts();
  if (busy.length > 0) {
    const list = busy.map((a) => `${a.port} (${a.name})`).join(", ");
    throw new Error(`port ${list} already in use on ${host} — is another \`npm start\` running? Stop it first.`);
  }

  // Made here, once, before any app starts, so four processes never race to create them.
  const pki = await ensureDevPki({ dir: join(dataDir, "pki"), services: [...DEV_PKI_SERVICES] });
  await ensureDevAdminIssuer(join(dataDir, "pki"));
  await loadOrCreateDevKek(dataDir);
  console.log(`${pki.created ? "created" : "reusing"} dev PKI in ${join(dataDir, "pki")}`);

  process.once("SIGINT", () => void stopAll(0));
  process.once("SIGTERM", () => void stopAll(0));

  // All four at once: licensing waits for signing-keys' trust bundle by itself and the audit
  // relays retry until audit answers, so start order does not matter and startup is faster.
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
  }
  await Promise.all(APPS.map((app) => waitServing(app.name, app.port, pki.caCertPem)));

  // Paths as the operator would type them from the repository root.
  const shown = (path: string) => {
    const rel = relative(process.cwd(), path);
    return rel !== "" && !rel.startsWith("..") ? rel : path;
  };
  const ca = shown(join(dataDir, "pki", "ca.crt"));
  const tokenEnv = resolve("./data") === dataDir ? "" : `DATA_DIR=${shown(dataDir)} `;
  const token = `$(${tokenEnv}npm run -s token -- --role support)`;
  console.log(`
control plane ready (data in ${dataDir})
  licensing     ${url(7443)}   licensing.v1.LicensingService, ApplianceService, ReconcileService
  signing-keys  ${url(7444)}   signing.v1.SigningKeyService
  audit         ${url(7445)}   audit.v1.AuditService
  fleet-sweep   ${url(7446)}   fleet.v1.FleetSweepService

try:
  grpcurl -cacert ${ca} -H "authorization: Bearer ${token}" localhost:7443 licensing.v1.LicensingService/ListLicenses
  npx buf curl --cacert ${ca} --protocol grpc --reflect -H "authorization: Bearer ${token}" ${url(7443)}/licensing.v1.LicensingService/ListLicenses
  npx buf curl --cacert ${ca} --protocol grpc --reflect ${url(7444)}/signing.v1.SigningKeyService/GetJwks
  npx buf curl --cacert ${ca} --reflect --list-methods ${url(7443)}
Ctrl-C stops all four.`);
}

/** The apps whose fixed port cannot be bound on `host` right now. */
async function busyPorts(): Promise<Array<(typeof APPS)[number]>> {
  const results = await Promise.all(
    APPS.map(
      (app) =>
        new Promise<boolean>((done) => {
          const probe = createServer();
          probe.once("error", () => done(true));
          probe.listen(app.port, host, () => probe.close(() => done(false)));
        }),
    ),
  );
  return APPS.filter((_, i) => results[i]);
}

/** Polls grpc.health.v1 Check until the app says SERVING (90 s at most: a first start compiles four apps). */
async function waitServing(name: string, port: number, caPem: string): Promise<void> {
  const health = createClient(Health, { baseUrl: url(port), tls: { caPem }, timeoutMs: 1_000, retries: 0 });
  const deadline = Date.now() + 90_000;
  for (;;) {
    try {
      const res = await health.check(create(HealthCheckRequestSchema, { service: "" }));
      if (res.status === HealthCheckResponse_ServingStatus.SERVING) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${name} did not become healthy on port ${port} within 90 s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

await main().catch((err: unknown) => {
  console.error("npm start failed:", err instanceof Error ? err.message : err);
  // Never leave an app running behind a start that failed half-way.
  void stopAll(1);
});
