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
 * PostgreSQL isolation: the apps read no schema variable (each uses `defaultSchemaFor(app)`), so a
 * cluster gets a database of its own (`lcp_e2e_<hex>`, created here and dropped by `stop()`).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, type WriteStream } from "node:fs";
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
import pg from "pg";

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
}

/** A running cluster. Always `await stop()` in `afterAll`/`finally`. */
export interface Cluster {
  readonly dataDir: string;
  /** `https://localhost:<port>` per app. */
  readonly urls: Readonly<Record<AppName, string>>;
  readonly ports: Readonly<Record<AppName, number>>;
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
  const portList = await freePorts(APPS.length);
  const ports = Object.fromEntries(APPS.map((app, i) => [app, portList[i]!])) as Record<AppName, number>;
  const urls = Object.fromEntries(APPS.map((app) => [app, `https://localhost:${ports[app]}`])) as Record<AppName, string>;

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
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
    ...options.env,
  };

  let idp: { child: ChildProcess; issuer: string } | undefined;
  if (options.devIdentityProvider) {
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

  const children = new Map<AppName, ChildProcess>();
  const logStreams = new Map<AppName, WriteStream>();
  const logPath = (app: AppName) => join(logDir, `${app}.log`);
  const issuer = ensureDevAdminIssuer(join(dataDir, "pki"));

  const spawnApp = (app: AppName): ChildProcess => {
    const child = spawn(process.execPath, ["--conditions=source", "--import", "tsx", join(REPO_ROOT, "apps", app, "src/main.ts")], {
      cwd: REPO_ROOT,
      env: { ...env, ...options.appEnv?.[app], PORT: String(ports[app]) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let log = logStreams.get(app);
    if (!log) {
      log = createWriteStream(logPath(app), { flags: "a" });
      logStreams.set(app, log);
    }
    log.write(`--- ${new Date().toISOString()} start pid ${child.pid}\n`);
    child.stdout!.pipe(log, { end: false });
    child.stderr!.pipe(log, { end: false });
    liveChildren.add(child);
    child.once("exit", (code, signal) => {
      liveChildren.delete(child);
      logStreams.get(app)?.write(`--- ${new Date().toISOString()} exit pid ${child.pid} ${signal ?? `code ${code}`}\n`);
    });
    children.set(app, child);
    return child;
  };
  const isAlive = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;
  const running = (app: AppName) => {
    const child = children.get(app);
    return child !== undefined && isAlive(child);
  };
  const logs = (app: AppName) => (existsSync(logPath(app)) ? readFileSync(logPath(app), "utf8") : "");

  const startApp = async (app: AppName) => {
    if (running(app)) throw new Error(`${app} is already running`);
    const child = spawnApp(app);
    try {
      await waitServing(urls[app], caPem, startTimeoutMs, () => isAlive(child));
    } catch (err) {
      throw new Error(`${app} did not start: ${(err as Error).message}\n--- ${logPath(app)} (tail)\n${logs(app).slice(-3_000)}`);
    }
  };

  const kill = (app: AppName, signal: NodeJS.Signals = "SIGKILL") =>
    new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => {
      const child = children.get(app);
      if (!child || !isAlive(child)) return done({ code: child?.exitCode ?? null, signal: child?.signalCode ?? null });
      child.once("exit", (code, sig) => done({ code, signal: sig }));
      child.kill(signal);
    });

  const stopApp = async (app: AppName) => {
    const child = children.get(app);
    if (!child || !isAlive(child)) return;
    const force = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await kill(app, "SIGTERM");
    clearTimeout(force);
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
      if (dropDatabase) await dropDatabase().catch(() => undefined);
      if (ownDir && !process.env.LCP_E2E_KEEP) rmSync(dataDir, { recursive: true, force: true });
    })());

  const cluster: Cluster = {
    dataDir,
    urls,
    ports,
    caPem,
    caPath,
    databaseUrl,
    env: Object.fromEntries(Object.entries(env).filter(([k]) => k !== "PORT")),
    async adminToken(role, subject = `e2e-${role}`) {
      if (idp) return npmRunToken(role, cluster.env);
      return (await issuer).mint({ subject, roles: [role], ttlSeconds: 3_600 });
    },
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
