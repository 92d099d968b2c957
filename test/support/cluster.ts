/**
 * The whole control plane as real processes, for end-to-end tests: each app is spawned exactly as
 * an operator runs it (`node --conditions=source --import tsx apps/<app>/src/main.ts`), on free
 * ports, with the dev PKI, admin-token issuer and KEK made once in a temporary DATA_DIR before any
 * app starts (as `npm start` does), each app's output in `<dataDir>/logs/<app>.log`.
 *
 * ```ts
 * const cluster = await startCluster({ databaseUrl: process.env.DATABASE_URL });
 * try {
 *   const licensing = cluster.adminClient(LicensingService, "support");
 *   await licensing.listLicenses({});
 * } finally {
 *   await cluster.stop();
 * }
 * ```
 *
 * With `image`, the apps run from an assembled production image instead (test/support/image.ts):
 * `node` with the image's entry point and `apps/<app>/dist/main.js`, `NODE_ENV=production`, TLS,
 * KEK and session-ticket files where the manifests mount them from Secrets, and the development
 * identity provider as the external OIDC issuer; `replicas` runs copies of an app behind a
 * round-robin TCP proxy on its port, as a Kubernetes Service does.
 *
 * PostgreSQL isolation: the apps read no schema variable (each uses `defaultSchemaFor(app)`), so a
 * cluster gets a database of its own (`lcp_e2e_<hex>`, created here and dropped by `stop()`).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { copyFileSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, type WriteStream } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import { create, type DescService } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import type { Role } from "@lcp/domain";
import { DEV_PKI_SERVICES, ensureDevPki } from "@lcp/pki";
import { Health, HealthCheckRequestSchema, HealthCheckResponse_ServingStatus } from "@lcp/proto/grpc/health/v1/health_pb";
import { createAdminClient, createClient } from "@lcp/rpc";
import { ensureDevAdminIssuer, loadOrCreateDevKek } from "@lcp/tokens";
import { createTcpProxy, type TcpProxy } from "@lcp/testing/tcp-proxy";
import pg from "pg";
import type { ImageRuntime } from "./image.js";

/** The four apps, in the order they are listed everywhere else (README, docs/design.md §2). */
export const APPS = ["licensing", "signing-keys", "audit", "fleet-sweep"] as const;
/** One of the four apps. */
export type AppName = (typeof APPS)[number];

/** The repository root (test/support/ is two levels down). */
export const REPO_ROOT = resolve(fileURLToPath(import.meta.url), "../../..");

/** Options of {@link startCluster}. */
export interface ClusterOptions {
  /** Where PKI, SQLite files, logs and sim state live; default a fresh temp folder (removed by `stop()`). */
  readonly dataDir?: string;
  /** A PostgreSQL server URL; the cluster creates its own database on it and drops it at `stop()`. */
  readonly databaseUrl?: string;
  /** Which apps to start now (default all four); the others can be `start`ed later. */
  readonly apps?: readonly AppName[];
  /** Extra environment for every app (e.g. `LOG_LEVEL: "info"`). */
  readonly env?: Readonly<Record<string, string>>;
  /** Extra environment per app. */
  readonly appEnv?: Partial<Record<AppName, Readonly<Record<string, string>>>>;
  /** How long each app may take to report SERVING (default 45 s; 2 cores compile four apps at once). */
  readonly startTimeoutMs?: number;
  /**
   * Start the development identity provider first (tools/dev-idp/main.ts, state in
   * `<dataDir>/dev-idp`) and have the apps trust it through OIDC_* as `npm start` does, instead of
   * the dev admin issuer; `env` then carries OIDC_ISSUER, so `npm run token` run with it signs in there.
   */
  readonly devIdentityProvider?: boolean;
  /** With `devIdentityProvider`: the console it sends browsers back to (its `CONSOLE_URL`). */
  readonly consoleUrl?: string;
  /** Run the apps from this assembled production image (implies `devIdentityProvider`). */
  readonly image?: { readonly dir: string; readonly runtime: ImageRuntime };
  /** Copies of an app (default 1), behind a round-robin TCP proxy on the app's port. */
  readonly replicas?: Partial<Record<AppName, number>>;
  /** Give every replica an `ADMIN_PORT` (plain-text probes and metrics); see `adminPorts`. */
  readonly adminPorts?: boolean;
}

/** A running cluster. Always `await stop()` in `afterAll`/`finally`. */
export interface Cluster {
  readonly dataDir: string;
  /** `https://localhost:<port>` per app. */
  readonly urls: Readonly<Record<AppName, string>>;
  readonly ports: Readonly<Record<AppName, number>>;
  /** Each replica's own URL (one entry unless `replicas` asked for more); `REPLICA_ID` is `<app>-<n>`. */
  readonly replicaUrls: Readonly<Record<AppName, readonly string[]>>;
  /** Each replica's `ADMIN_PORT` with the `adminPorts` option, else empty lists. */
  readonly adminPorts: Readonly<Record<AppName, readonly number[]>>;
  /** The platform CA (PEM) and its path (`<dataDir>/pki/ca.crt`). */
  readonly caPem: string;
  readonly caPath: string;
  /** The DATABASE_URL the apps were given (their own database), or undefined on SQLite. */
  readonly databaseUrl: string | undefined;
  /** The environment every app gets (PORT aside): for tools run against this cluster. */
  readonly env: Readonly<Record<string, string>>;
  /**
   * A bearer token from the cluster's dev admin issuer; with `devIdentityProvider`, from
   * `npm run token` signing in as the role's dev user (`subject` is then the role's username).
   */
  adminToken(role: Role, subject?: string): Promise<string>;
  /** The `sub` of {@link adminToken}'s token for `role` (what the audit trail names as the actor). */
  adminSubject(role: Role): string;
  /** A typed client for `service`, authenticated as an admin with `role`, aimed at the app serving it. */
  adminClient<T extends DescService>(service: T, role: Role): Client<T>;
  /** Sends `signal` (default SIGKILL) to an app and resolves when it has exited. */
  kill(app: AppName, signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Starts an app that is not running (same port, same data) and waits until it is SERVING. */
  start(app: AppName): Promise<void>;
  /** SIGTERM, wait for exit, start again. */
  restart(app: AppName): Promise<void>;
  /** Whether the app's process is alive. */
  running(app: AppName): boolean;
  /** The app's log so far (stdout and stderr, every incarnation). */
  logs(app: AppName): string;
  /** Stops every app (SIGTERM, then SIGKILL after 10 s), drops the database and removes a temp DATA_DIR. */
  stop(): Promise<void>;
}

/** Which app serves a service, by the proto package. */
export function appServing(service: DescService): AppName {
  const pkg = service.typeName.split(".")[0];
  switch (pkg) {
    case "licensing":
      return "licensing";
    case "signing":
      return "signing-keys";
    case "audit":
      return "audit";
    case "fleet":
      return "fleet-sweep";
    default:
      throw new Error(`no app serves ${service.typeName}`);
  }
}

/** Free TCP ports on 127.0.0.1, all held open together so none is handed out twice. */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((done, fail) => {
          const server = createServer();
          server.once("error", fail);
          server.listen(0, "127.0.0.1", () => done(server));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((done) => s.close(done))));
  return ports;
}

/** Makes the dev PKI, admin-token issuer and KEK in `dataDir`, once, before any app starts. */
export async function prepareDataDir(dataDir: string): Promise<{ caPem: string; caPath: string }> {
  const pkiDir = join(dataDir, "pki");
  const pki = await ensureDevPki({ dir: pkiDir, services: [...DEV_PKI_SERVICES] });
  await ensureDevAdminIssuer(pkiDir);
  await loadOrCreateDevKek(dataDir);
  return { caPem: pki.caCertPem, caPath: pki.caPath };
}

/** Polls grpc.health.v1 Check until SERVING; `alive()` false fails at once (the process died). */
export async function waitServing(url: string, caPem: string, timeoutMs: number, alive: () => boolean = () => true): Promise<void> {
  const health = createClient(Health, { baseUrl: url, tls: { caPem }, timeoutMs: 1_000, retries: 0 });
  const deadline = Date.now() + timeoutMs;
  let last = "no answer";
  for (;;) {
    if (!alive()) throw new Error(`process exited before ${url} was SERVING`);
    try {
      const res = await health.check(create(HealthCheckRequestSchema, { service: "" }));
      if (res.status === HealthCheckResponse_ServingStatus.SERVING) return;
      last = `status ${HealthCheckResponse_ServingStatus[res.status]}`;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`${url} not SERVING within ${timeoutMs} ms (${last})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Every child of every cluster in this process: killed synchronously if the test process exits. */
const liveChildren = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of liveChildren) child.kill("SIGKILL");
});

/** Starts the cluster; on any failure everything already started is stopped before the error is thrown. */
export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const ownDir = options.dataDir === undefined;
  const dataDir = resolve(options.dataDir ?? mkdtempSync(join(tmpdir(), "lcp-e2e-")));
  const logDir = join(dataDir, "logs");
  mkdirSync(logDir, { recursive: true });
  const startTimeoutMs = options.startTimeoutMs ?? 45_000;

  const { caPem, caPath } = await prepareDataDir(dataDir);
  const replicas = (app: AppName) => options.replicas?.[app] ?? 1;
  // Every port at once (replicas, their admin ports, the balancers in front of replicated apps),
  // so none is handed out twice.
  const portList = await freePorts(APPS.reduce((n, app) => n + replicas(app) * (options.adminPorts ? 2 : 1) + (replicas(app) > 1 ? 1 : 0), 0));
  const replicaPorts = Object.fromEntries(APPS.map((app) => [app, portList.splice(0, replicas(app))])) as Record<AppName, number[]>;
  const adminPorts = Object.fromEntries(APPS.map((app) => [app, options.adminPorts ? portList.splice(0, replicas(app)) : []])) as Record<AppName, number[]>;
  const proxies: TcpProxy[] = [];
  const ports = {} as Record<AppName, number>;
  for (const app of APPS) {
    if (replicas(app) === 1) ports[app] = replicaPorts[app][0]!;
    else {
      // Round robin, as a Kubernetes Service spreads new connections over its pods.
      let next = 0;
      const targets = replicaPorts[app];
      const proxy = await createTcpProxy({ port: portList.shift()!, target: () => ({ host: "127.0.0.1", port: targets[next++ % targets.length]! }) });
      proxies.push(proxy);
      ports[app] = proxy.port;
    }
  }
  const urls = Object.fromEntries(APPS.map((app) => [app, `https://localhost:${ports[app]}`])) as Record<AppName, string>;
  const replicaUrls = Object.fromEntries(APPS.map((app) => [app, replicaPorts[app].map((port) => `https://localhost:${port}`)])) as Record<AppName, string[]>;

  let databaseUrl: string | undefined;
  let dropDatabase: (() => Promise<void>) | undefined;
  if (options.databaseUrl) {
    const made = await createDatabase(options.databaseUrl);
    databaseUrl = made.url;
    dropDatabase = made.drop;
  }

  // The child inherits a clean environment: no DATABASE_URL of the test runner's leaks in, and no
  // NODE_OPTIONS from vitest changes how the app runs.
  const baseEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || k === "DATABASE_URL" || k === "NODE_OPTIONS" || k.startsWith("VITEST")) continue;
    baseEnv[k] = v;
  }
  const env: Record<string, string> = {
    ...baseEnv,
    NODE_ENV: "development",
    DATA_DIR: dataDir,
    HOST: "127.0.0.1",
    LOG_LEVEL: "warn",
    SIGNING_KEYS_URL: urls["signing-keys"],
    AUDIT_URL: urls.audit,
    LICENSING_URL: urls.licensing,
    // Only on-demand sweeps, so a test sees exactly the runs it asked for.
    SWEEP_INTERVAL: "off",
    // Replicas learn settings and key changes within this; one replica applies them at once.
    JWKS_MAX_AGE: "1s",
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
    ...(options.image ? imageEnvironment(options.image.runtime, dataDir) : {}),
    ...options.env,
  };
  const secretFiles = options.image ? writeSecretFiles(dataDir) : undefined;

  let idp: { child: ChildProcess; issuer: string } | undefined;
  if (options.devIdentityProvider || options.image) {
    try {
      idp = await startDevIdentityProvider(dataDir, logDir, options.consoleUrl ? { ...baseEnv, CONSOLE_URL: options.consoleUrl } : baseEnv, startTimeoutMs);
    } catch (err) {
      if (dropDatabase) await dropDatabase().catch(() => undefined);
      throw err;
    }
    Object.assign(env, {
      OIDC_ISSUER: idp.issuer,
      OIDC_AUDIENCE: DEV_IDP_AUDIENCE,
      OIDC_JWKS_URL: `${idp.issuer}/jwks`,
      OIDC_CA_FILE: caPath,
    });
  }

  // Replica i of an app: its process, its log (`<app>.log` for the first, `<app>-<n>.log` after).
  const children = new Map<AppName, Array<ChildProcess | undefined>>();
  const logStreams = new Map<string, WriteStream>();
  const logName = (app: AppName, i: number) => (i === 0 ? app : `${app}-${i + 1}`);
  const logPath = (app: AppName, i = 0) => join(logDir, `${logName(app, i)}.log`);
  const issuer = ensureDevAdminIssuer(join(dataDir, "pki"));

  const spawnApp = (app: AppName, i: number): ChildProcess => {
    const command = options.image
      ? { args: [...imageNodeArgs(options.image.runtime), `apps/${app}/dist/main.js`], cwd: options.image.dir }
      : { args: ["--conditions=source", "--import", "tsx", join(REPO_ROOT, "apps", app, "src/main.ts")], cwd: REPO_ROOT };
    const child = spawn(process.execPath, command.args, {
      cwd: command.cwd,
      env: {
        ...env,
        ...(secretFiles ? secretFiles.env(app) : {}),
        ...(replicas(app) > 1 ? { REPLICA_ID: `${app}-${i + 1}` } : {}),
        ...(options.adminPorts ? { ADMIN_PORT: String(adminPorts[app][i]) } : {}),
        ...options.appEnv?.[app],
        PORT: String(replicaPorts[app][i]),
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const name = logName(app, i);
    let log = logStreams.get(name);
    if (!log) {
      log = createWriteStream(logPath(app, i), { flags: "a" });
      logStreams.set(name, log);
    }
    log.write(`--- ${new Date().toISOString()} start pid ${child.pid}\n`);
    child.stdout!.pipe(log, { end: false });
    child.stderr!.pipe(log, { end: false });
    liveChildren.add(child);
    child.once("exit", (code, signal) => {
      liveChildren.delete(child);
      logStreams.get(name)?.write(`--- ${new Date().toISOString()} exit pid ${child.pid} ${signal ?? `code ${code}`}\n`);
    });
    const list = children.get(app) ?? [];
    list[i] = child;
    children.set(app, list);
    return child;
  };
  const isAlive = (child: ChildProcess | undefined): child is ChildProcess => child !== undefined && child.exitCode === null && child.signalCode === null;
  const running = (app: AppName) => (children.get(app) ?? []).some(isAlive);
  const logs = (app: AppName) =>
    Array.from({ length: replicas(app) }, (_, i) => (existsSync(logPath(app, i)) ? readFileSync(logPath(app, i), "utf8") : "")).join("");

  const startApp = async (app: AppName) => {
    if (running(app)) throw new Error(`${app} is already running`);
    await Promise.all(
      replicaUrls[app].map(async (url, i) => {
        const child = spawnApp(app, i);
        try {
          await waitServing(url, caPem, startTimeoutMs, () => isAlive(child));
        } catch (err) {
          throw new Error(`${logName(app, i)} did not start: ${(err as Error).message}\n--- ${logPath(app, i)} (tail)\n${readFileSync(logPath(app, i), "utf8").slice(-3_000)}`);
        }
      }),
    );
  };

  const killOne = (child: ChildProcess | undefined, signal: NodeJS.Signals) =>
    new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => {
      if (!isAlive(child)) {
        const ended = child as ChildProcess | undefined;
        return done({ code: ended?.exitCode ?? null, signal: ended?.signalCode ?? null });
      }
      child.once("exit", (code, sig) => done({ code, signal: sig }));
      child.kill(signal);
    });
  const kill = async (app: AppName, signal: NodeJS.Signals = "SIGKILL") => (await Promise.all((children.get(app) ?? [undefined]).map((c) => killOne(c, signal))))[0]!;

  const stopApp = async (app: AppName) => {
    await Promise.all(
      (children.get(app) ?? []).filter(isAlive).map(async (child) => {
        const force = setTimeout(() => child.kill("SIGKILL"), 10_000);
        await killOne(child, "SIGTERM");
        clearTimeout(force);
      }),
    );
  };

  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      // Consumers first, so nobody logs a burst of connection errors while its dependency stops.
      for (const group of [["fleet-sweep"], ["licensing"], ["signing-keys"], ["audit"]] as AppName[][]) {
        await Promise.all(group.map(stopApp));
      }
      if (idp && idp.child.exitCode === null && idp.child.signalCode === null) {
        const child = idp.child;
        await new Promise<void>((done) => {
          const force = setTimeout(() => child.kill("SIGKILL"), 10_000);
          child.once("exit", () => {
            clearTimeout(force);
            done();
          });
          child.kill("SIGTERM");
        });
      }
      await Promise.all([...logStreams.values()].map((s) => new Promise((done) => s.end(done))));
      await Promise.all(proxies.map((p) => p.close()));
      if (dropDatabase) await dropDatabase().catch(() => undefined);
      if (ownDir && !process.env.LCP_E2E_KEEP) rmSync(dataDir, { recursive: true, force: true });
    })());

  const signedIn = new Map<Role, { token: Promise<string>; at: number }>();
  const cluster: Cluster = {
    dataDir,
    urls,
    ports,
    replicaUrls,
    adminPorts,
    caPem,
    caPath,
    databaseUrl,
    env: Object.fromEntries(Object.entries(env).filter(([k]) => k !== "PORT")),
    async adminToken(role, subject = `e2e-${role}`) {
      if (idp) {
        // A sign-in is a process (`npm run token`) taking a second or more: reuse one per role
        // for a minute (the provider's tokens live longer), so a timed step never waits for one.
        const cached = signedIn.get(role);
        if (cached && Date.now() - cached.at < 60_000) return cached.token;
        const token = npmRunToken(role, cluster.env);
        signedIn.set(role, { token, at: Date.now() });
        token.catch(() => signedIn.delete(role));
        return token;
      }
      return (await issuer).mint({ subject, roles: [role], ttlSeconds: 3_600 });
    },
    adminSubject: (role) => (idp ? role : `e2e-${role}`),
    adminClient(service, role) {
      let token: Promise<string> | undefined;
      return createAdminClient(service, {
        baseUrl: urls[appServing(service)],
        caPem,
        token: () => (token ??= cluster.adminToken(role)),
        timeoutMs: 15_000,
      });
    },
    kill,
    start: startApp,
    async restart(app) {
      await stopApp(app);
      await startApp(app);
    },
    running,
    logs,
    stop,
  };

  try {
    // All at once: licensing waits for signing-keys' trust bundle and the relays retry until audit
    // answers, so no start order is needed, and 2 cores compile four apps faster side by side.
    await Promise.all((options.apps ?? APPS).map(startApp));
  } catch (err) {
    await stop();
    throw err;
  }
  return cluster;
}

/** The dev identity provider's `aud`, as tools/dev-idp/constants.ts names it (tests import no tool code). */
const DEV_IDP_AUDIENCE = "urn:lcp:admin";

/**
 * Runs tools/dev-idp/main.ts on a free port, its output in `<logDir>/dev-idp.log`, and resolves
 * with its issuer once it prints it (it is listening then).
 */
async function startDevIdentityProvider(dataDir: string, logDir: string, baseEnv: Record<string, string>, timeoutMs: number): Promise<{ child: ChildProcess; issuer: string }> {
  const [port] = await freePorts(1);
  const child = spawn(process.execPath, ["--conditions=source", "--import", "tsx", join(REPO_ROOT, "tools/dev-idp/main.ts")], {
    cwd: REPO_ROOT,
    env: { ...baseEnv, NODE_ENV: "development", DATA_DIR: dataDir, HOST: "127.0.0.1", PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  liveChildren.add(child);
  child.once("exit", () => liveChildren.delete(child));
  const log = createWriteStream(join(logDir, "dev-idp.log"), { flags: "a" });
  child.stdout!.pipe(log, { end: false });
  child.stderr!.pipe(log, { end: false });
  child.once("close", () => log.end());
  let output = "";
  return new Promise((done, fail) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      fail(new Error(`the dev identity provider did not start within ${timeoutMs} ms:\n${output.slice(-3_000)}`));
    }, timeoutMs);
    const onData = (d: Buffer) => {
      output += d.toString();
      const issuer = /^dev identity provider (https:\/\/localhost:\d+)$/m.exec(output)?.[1];
      if (issuer) {
        clearTimeout(timer);
        child.stdout!.off("data", onData);
        child.stderr!.off("data", onData);
        done({ child, issuer });
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      fail(new Error(`the dev identity provider exited (${signal ?? code}) before it was ready:\n${output.slice(-3_000)}`));
    });
  });
}

/** `npm run -s token -- --role <role>` with the cluster's environment (its DATA_DIR and OIDC_ISSUER). */
function npmRunToken(role: Role, env: Readonly<Record<string, string>>): Promise<string> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ["--conditions=source", "--import", "tsx", join(REPO_ROOT, "tools/token/main.ts"), "--role", role], {
      cwd: REPO_ROOT,
      env: { ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    child.once("close", (code) => (code === 0 ? done(stdout.trim()) : fail(new Error(`npm run token --role ${role} failed (${code}): ${stderr}`))));
  });
}

/** Creates a fresh database on the server of `serverUrl` and returns its URL and a dropper. */
async function createDatabase(serverUrl: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `lcp_e2e_${randomBytes(5).toString("hex")}`;
  const admin = async (sql: string) => {
    const client = new pg.Client({ connectionString: serverUrl });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };
  await admin(`create database "${name}"`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    // FORCE: a killed app may leave a connection the server has not noticed yet.
    drop: () => admin(`drop database if exists "${name}" with (force)`),
  };
}

/** The drivers an e2e story runs on: SQLite always, PostgreSQL when DATABASE_URL is set. */
export function e2eDatabases(): Array<{ name: "sqlite" | "postgresql"; databaseUrl: string | undefined }> {
  const url = process.env.DATABASE_URL?.trim();
  return [{ name: "sqlite", databaseUrl: undefined }, ...(url ? [{ name: "postgresql" as const, databaseUrl: url }] : [])];
}

/** The image's environment for a test run: its ENV lines, with DATA_DIR and HOST of the test's. */
function imageEnvironment(runtime: ImageRuntime, dataDir: string): Record<string, string> {
  if (runtime.env.NODE_ENV !== "production") throw new Error("the image does not set NODE_ENV=production");
  return { ...runtime.env, DATA_DIR: dataDir, HOST: "127.0.0.1" };
}

/** Node's arguments from the image's ENTRYPOINT (`["node", ...flags]`); the app's script follows. */
function imageNodeArgs(runtime: ImageRuntime): string[] {
  const [program, ...flags] = runtime.entrypoint;
  if (program !== "node") throw new Error(`the image's ENTRYPOINT runs ${program ?? "nothing"}, not node`);
  return flags;
}

/**
 * The files production reads instead of the development fallbacks, where the manifests mount them
 * from Secrets (deploy/kubernetes/base): each app's TLS certificate, key and CA, the KEK, and the
 * session-ticket secret licensing's replicas share. Certificates come from the cluster's PKI;
 * mode 0440 as a Secret volume with fsGroup has them.
 */
function writeSecretFiles(dataDir: string): { env(app: AppName): Record<string, string> } {
  const root = join(dataDir, "secrets");
  const put = (path: string, write: (file: string) => void) => {
    mkdirSync(join(path, ".."), { recursive: true, mode: 0o700 });
    write(path);
    return path;
  };
  const secret = (name: string, content: string) => put(join(root, name), (file) => writeFileSync(file, content, { mode: 0o440 }));
  const copy = (name: string, from: string) => put(join(root, name), (file) => copyFileSync(from, file));
  const kek = secret("kek/kek", readFileSync(join(dataDir, "kek"), "utf8"));
  const ticketKey = secret("ticket-key/ticket.key", `${randomBytes(48).toString("base64")}\n`);
  return {
    env(app) {
      const tls = {
        TLS_CERT_FILE: copy(`${app}/tls/tls.crt`, join(dataDir, "pki", `${app}.crt`)),
        TLS_KEY_FILE: copy(`${app}/tls/tls.key`, join(dataDir, "pki", `${app}.key`)),
        TLS_CA_FILE: copy(`${app}/tls/ca.crt`, join(dataDir, "pki", "ca.crt")),
      };
      return {
        ...tls,
        ...(app === "signing-keys" ? { KEK_FILE: kek } : {}),
        ...(app === "licensing" ? { TLS_TICKET_KEY_FILE: ticketKey } : {}),
      };
    },
  };
}
