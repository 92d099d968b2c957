/**
 * `npm start`: the whole control plane on one machine. First the development identity provider
 * (tools/dev-idp, its own process on 7441: it signs the admin tokens the apps accept), then the four
 * apps at once (one process each, its own port and SQLite database under DATA_DIR, or its own
 * schema when DATABASE_URL names a PostgreSQL), each told to verify admin tokens against the dev
 * identity provider exactly as against an organisation's (OIDC_ISSUER, OIDC_AUDIENCE,
 * OIDC_JWKS_URL, and OIDC_CA_FILE for the dev PKI's CA). The dev PKI and key-encryption key are
 * made on first run and reused after. Prints each endpoint, the dev users and their passwords, and
 * ready grpcurl / buf curl lines; Ctrl-C stops them all. Refuses NODE_ENV=production.
 *
 * The identity provider runs as a child like the apps rather than inside this process: the same
 * entry point an operator (or the console's developers) can run alone, its log lines prefixed like
 * every other, a crash of it stops the plane like a crash of an app, and `npm start` itself stays
 * free of oidc-provider.
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
import { createTrustingFetch, loadOrCreateDevKek } from "@lcp/tokens";
import { CONSOLE_CLIENT_ID, DEV_IDP_AUDIENCE, DEV_IDP_PORT, DEV_IDP_STATE_DIR } from "../dev-idp/constants.js";
import { ensureConsoleAssets } from "./console-assets.js";
import { DEV_IDP_FILES, readDevUsers, type DevUser } from "../dev-idp/state.js";

const repoRoot = resolve(fileURLToPath(import.meta.url), "../../..");
const dataDir = resolve(process.env.DATA_DIR ?? "./data");
const host = process.env.HOST ?? "127.0.0.1";

const url = (port: number) => `https://localhost:${port}`;

/** What the processes need to know about the dev identity provider. */
interface IdentityProviderInfo {
  issuer: string;
  /** The `lcp-console` client secret's file (a console's OIDC_CLIENT_SECRET_FILE). */
  consoleSecretFile: string;
}

/** One process `npm start` runs. */
interface DevProcess {
  readonly name: string;
  readonly port: number;
  /** Its entry point, relative to the repository root. */
  readonly entry: string;
  /** What it serves, for the banner. */
  readonly serves: string;
  /** Environment of its own, besides DATA_DIR, HOST, PORT and the URLs of the others. */
  readonly env?: (idp: IdentityProviderInfo) => Record<string, string>;
  /** Ready when this path answers over HTTPS; without it, when grpc.health.v1 says SERVING. */
  readonly readyPath?: string;
}

/** The identity provider, started (and answering) before any app. */
const IDP: DevProcess = {
  name: "dev-idp",
  port: DEV_IDP_PORT,
  entry: "tools/dev-idp/main.ts",
  serves: "OpenID Connect sign-in (dev users below)",
  readyPath: "/.well-known/openid-configuration",
};

/** The console: signs admins in at the dev identity provider and routes the screens' calls to the apps. */
const CONSOLE: DevProcess = {
  name: "console",
  port: 7440,
  entry: "apps/console/src/main.ts",
  serves: "the operator console (sign in as a dev user below)",
  readyPath: "/healthz",
  env: (idp) => ({ OIDC_CLIENT_ID: CONSOLE_CLIENT_ID, OIDC_CLIENT_SECRET_FILE: idp.consoleSecretFile, PUBLIC_URL: url(7440), FLEET_SWEEP_URL: url(7446) }),
};

/**
 * The apps on their fixed ports (docs/design.md §12), started together: a process that serves no
 * gRPC health names a `readyPath` instead.
 */
const APPS: readonly DevProcess[] = [
  CONSOLE,
  { name: "signing-keys", port: 7444, entry: "apps/signing-keys/src/main.ts", serves: "signing.v1.SigningKeyService" },
  { name: "audit", port: 7445, entry: "apps/audit/src/main.ts", serves: "audit.v1.AuditService" },
  { name: "licensing", port: 7443, entry: "apps/licensing/src/main.ts", serves: "licensing.v1.LicensingService, ApplianceService, ReconcileService" },
  { name: "fleet-sweep", port: 7446, entry: "apps/fleet-sweep/src/main.ts", serves: "fleet.v1.FleetSweepService" },
];

const ALL = [IDP, ...APPS];
/** Consumers first, so none logs errors about a dependency that left; the identity provider last. */
const STOP_ORDER = ["console", "fleet-sweep", "licensing", "signing-keys", "audit", IDP.name];
const portOf = (name: string) => ALL.find((p) => p.name === name)!.port;

const children = new Map<string, ChildProcess>();
let stopping = false;

/** Stops every process (SIGTERM, SIGKILL after 15 s) and exits with `code`. */
const stopAll = async (code: number): Promise<never> => {
  if (!stopping) {
    stopping = true;
    console.log("stopping…");
    for (const name of [...STOP_ORDER, ...[...children.keys()].filter((n) => !STOP_ORDER.includes(n))]) {
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

/** Spawns one process with the shared environment and its own, its output prefixed with its name. */
function spawnProcess(proc: DevProcess, idp: IdentityProviderInfo, extraEnv: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, ["--conditions=source", "--import", "tsx", join(repoRoot, proc.entry)], {
    cwd: repoRoot,
    env: {
      ...process.env,
      ...extraEnv,
      ...proc.env?.(idp),
      DATA_DIR: dataDir,
      HOST: host,
      PORT: String(proc.port),
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.set(proc.name, child);
  for (const stream of [child.stdout!, child.stderr!]) {
    createInterface({ input: stream }).on("line", (line) => console.log(`[${proc.name}] ${line}`));
  }
  child.once("exit", (code, signal) => {
    if (stopping) return;
    console.error(`${proc.name} exited (${signal ?? `code ${code}`}); stopping the others`);
    void stopAll(1);
  });
  return child;
}

async function main(): Promise<void> {
  // Before anything is written: a second `npm start` (or anything else on our ports) must fail
  // with a sentence, not with five processes dying of EADDRINUSE in interleaved logs.
  const busy = await busyPorts();
  if (busy.length > 0) {
    const list = busy.map((p) => `${p.port} (${p.name})`).join(", ");
    throw new Error(`port ${list} already in use on ${host} — is another \`npm start\` running? Stop it first.`);
  }

  // Made here, once, before any process starts, so they never race to create them.
  const pki = await ensureDevPki({ dir: join(dataDir, "pki"), services: [...DEV_PKI_SERVICES] });
  await loadOrCreateDevKek(dataDir);
  console.log(`${pki.created ? "created" : "reusing"} dev PKI in ${join(dataDir, "pki")}`);

  ensureConsoleAssets(repoRoot, (line) => console.log(line));

  process.once("SIGINT", () => void stopAll(0));
  process.once("SIGTERM", () => void stopAll(0));

  const stateDir = join(dataDir, DEV_IDP_STATE_DIR);
  const idp: IdentityProviderInfo = { issuer: url(IDP.port), consoleSecretFile: join(stateDir, DEV_IDP_FILES.consoleClientSecret) };
  spawnProcess(IDP, idp, {});
  await waitReady(IDP, pki.caCertPem);
  const users = await readDevUsers(stateDir);

  // The apps at once: licensing waits for signing-keys' trust bundle by itself and the audit
  // relays retry until audit answers, so their order does not matter and startup is faster.
  const shared = {
    SIGNING_KEYS_URL: url(portOf("signing-keys")),
    AUDIT_URL: url(portOf("audit")),
    LICENSING_URL: url(portOf("licensing")),
    OIDC_ISSUER: idp.issuer,
    OIDC_AUDIENCE: DEV_IDP_AUDIENCE,
    OIDC_JWKS_URL: `${idp.issuer}/jwks`,
    OIDC_CA_FILE: pki.caPath,
  };
  for (const app of APPS) spawnProcess(app, idp, shared);
  await Promise.all(APPS.map((app) => waitReady(app, pki.caCertPem)));
  console.log(banner(users));
}

/** The ready message: endpoints, dev users, commands to try. */
function banner(users: readonly DevUser[]): string {
  // Paths as the operator would type them from the repository root.
  const shown = (path: string) => {
    const rel = relative(process.cwd(), path);
    return rel !== "" && !rel.startsWith("..") ? rel : path;
  };
  const ca = shown(join(dataDir, "pki", "ca.crt"));
  const tokenEnv = resolve("./data") === dataDir ? "" : `DATA_DIR=${shown(dataDir)} `;
  const token = `$(${tokenEnv}npm run -s token -- --role support)`;
  const width = Math.max(...ALL.map((p) => p.name.length)) + 2;
  const roleWidth = Math.max(...users.map((u) => u.role.length)) + 2;
  return `
control plane ready (data in ${dataDir})
${ALL.filter((p) => p !== CONSOLE).map((p) => `  ${p.name.padEnd(width)}${url(p.port)}   ${p.serves}`).join("\n")}

console ${url(CONSOLE.port)}/licensing

dev users (sign in at ${url(IDP.port)}; kept in ${shown(join(dataDir, DEV_IDP_STATE_DIR, DEV_IDP_FILES.users))}):
${users.map((u) => `  ${u.role.padEnd(roleWidth)}user ${u.username}  password ${u.password}`).join("\n")}

try:
  grpcurl -cacert ${ca} -H "authorization: Bearer ${token}" localhost:7443 licensing.v1.LicensingService/ListLicenses
  npx buf curl --cacert ${ca} --protocol grpc --reflect -H "authorization: Bearer ${token}" ${url(7443)}/licensing.v1.LicensingService/ListLicenses
  npx buf curl --cacert ${ca} --protocol grpc --reflect ${url(7444)}/signing.v1.SigningKeyService/GetJwks
  npx buf curl --cacert ${ca} --reflect --list-methods ${url(7443)}
Ctrl-C stops them all.`;
}

/** The processes whose fixed port cannot be bound on `host` right now. */
async function busyPorts(): Promise<DevProcess[]> {
  const results = await Promise.all(
    ALL.map(
      (proc) =>
        new Promise<boolean>((done) => {
          const probe = createServer();
          probe.once("error", () => done(true));
          probe.listen(proc.port, host, () => probe.close(() => done(false)));
        }),
    ),
  );
  return ALL.filter((_, i) => results[i]);
}

/**
 * Polls until the process serves (90 s at most: a first start compiles five processes on a small
 * machine): its `readyPath` answering 2xx over HTTPS, or grpc.health.v1 Check saying SERVING.
 */
async function waitReady(proc: DevProcess, caPem: string): Promise<void> {
  const deadline = Date.now() + 90_000;
  const check = proc.readyPath !== undefined ? httpsCheck(new URL(proc.readyPath, url(proc.port)), caPem) : healthCheck(proc.port, caPem);
  for (;;) {
    if (await check().catch(() => false)) return;
    if (stopping) throw new Error(`${proc.name} stopped before it was ready`);
    if (Date.now() > deadline) throw new Error(`${proc.name} did not become ready on port ${proc.port} within 90 s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

function httpsCheck(target: URL, caPem: string): () => Promise<boolean> {
  const fetch = createTrustingFetch({ caPem, timeoutMs: 1_000 });
  return async () => {
    const res = await fetch(target);
    await res.arrayBuffer();
    return res.status >= 200 && res.status < 300;
  };
}

function healthCheck(port: number, caPem: string): () => Promise<boolean> {
  const health = createClient(Health, { baseUrl: url(port), tls: { caPem }, timeoutMs: 1_000, retries: 0 });
  return async () => (await health.check(create(HealthCheckRequestSchema, { service: "" }))).status === HealthCheckResponse_ServingStatus.SERVING;
}

if (process.env.NODE_ENV === "production") {
  console.error(
    "npm start runs the development control plane (dev PKI, dev identity provider with printed passwords, dev KEK) and never runs with NODE_ENV=production; run each app with its production configuration instead.",
  );
  process.exit(2);
}

await main().catch((err: unknown) => {
  console.error("npm start failed:", err instanceof Error ? err.message : err);
  // Never leave a process running behind a start that failed half-way.
  void stopAll(1);
});
