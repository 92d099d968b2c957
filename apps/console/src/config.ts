/**
 * The console server's configuration, parsed once at start from the environment. A bad value
 * fails fast with a ConfigError naming the variable (`console: configuration error: AUDIT_URL: …`).
 *
 * - `HOST` (default `127.0.0.1`), `PORT` (default 7440), `DATA_DIR` (default `./data`), `LOG_LEVEL`.
 * - `TLS_CERT_FILE`, `TLS_KEY_FILE`, `TLS_CA_FILE`: all three or none; none → the dev PKI's
 *   `console` certificate in `DATA_DIR/pki` (made on first start). The CA is also what the
 *   services' certificates must chain to when the console calls them.
 * - `PUBLIC_URL` (default `https://localhost:<PORT>`): the origin browsers use; the OIDC redirect
 *   URI is `PUBLIC_URL/auth/callback`, and state-changing requests must come from this origin.
 * - `LICENSING_URL`, `SIGNING_KEYS_URL`, `AUDIT_URL`, `FLEET_SWEEP_URL` (defaults
 *   `https://localhost:7443` … `7446`): where the browser's API calls are routed.
 * - `OIDC_ISSUER`, `OIDC_CLIENT_ID` (default `lcp-console`), `OIDC_CLIENT_SECRET` or
 *   `OIDC_CLIENT_SECRET_FILE` (not both), `OIDC_CA_FILE` (extra trust for the issuer),
 *   `OIDC_SCOPES` (default `openid profile`), `OIDC_ROLES_CLAIM` (default `roles`, dotted path
 *   allowed, as the services read it). Without `OIDC_ISSUER` (development only): the dev identity
 *   provider at `https://localhost:7441`, trusted through the dev CA, with the client secret it
 *   writes to `DATA_DIR/dev-idp/console-client-secret` (read at sign-in, so start order does not matter).
 * - `SESSION_IDLE_TIMEOUT` (default `30m`), `SESSION_MAX_AGE` (default `12h`), `MAX_SESSIONS`
 *   (default 10000, least recently used evicted beyond it).
 * - `WEB_ROOT` (default `apps/console/dist/web`): the built single-page app.
 * - `DATABASE_URL`: where sessions and pending sign-ins live, shared by every replica: unset →
 *   SQLite `DATA_DIR/console.sqlite`; `postgres://…` → PostgreSQL, schema `console`.
 * - `SESSION_KEY` or `SESSION_KEY_FILE` (not both): 32 bytes, base64 or hex, sealing the stored
 *   sessions (the same on every replica). Neither: a development key generated into
 *   `DATA_DIR/console-session-key` (mode 0600).
 * - `ADMIN_PORT` (unset → none): plain-HTTP `/healthz`, `/readyz`, `/metrics` for kubelet and
 *   Prometheus; `READINESS_INTERVAL` (default `2s`): how often the database is probed for `/readyz`.
 * With `NODE_ENV=production`, the TLS files, `OIDC_ISSUER`, `OIDC_CLIENT_ID`, a client secret and
 * a session key are required: no development fallback may guard a real deployment.
 */
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureDevPki } from "@lcp/pki";
import { DatabaseConfigError, driverForUrl } from "@lcp/persistence";
import {
  allOrNone,
  ConfigError,
  parseDurationVariable,
  parsePort,
  readCertificates,
  readPem,
  readProbeSettings,
  readTracingSettings,
  type TracingSettings,
} from "@lcp/rpc";
import { parseKek, readOrCreateFile } from "@lcp/tokens";
import type { Logger } from "pino";

/** The console's default port (docs/design.md §13). */
export const DEFAULT_CONSOLE_PORT = 7440;
/** The development identity provider (tools/dev-idp) the console signs in with when no issuer is named. */
export const DEV_OIDC_ISSUER = "https://localhost:7441";
/** The console's client id at the development identity provider, and the default `OIDC_CLIENT_ID`. */
export const DEFAULT_OIDC_CLIENT_ID = "lcp-console";
/** Where the development identity provider writes the console's client secret, under `DATA_DIR`. */
export const DEV_CLIENT_SECRET_FILE = join("dev-idp", "console-client-secret");
/** The scopes asked for when `OIDC_SCOPES` is unset. */
export const DEFAULT_OIDC_SCOPES = "openid profile";
/** Defaults of the session limits. */
export const DEFAULT_SESSION_IDLE_TIMEOUT_MS = 30 * 60_000;
export const DEFAULT_SESSION_MAX_AGE_MS = 12 * 3_600_000;
export const DEFAULT_MAX_SESSIONS = 10_000;
/** The built web app next to this module: `apps/console/dist/web` from `src/` and from `dist/` alike. */
export const DEFAULT_WEB_ROOT = fileURLToPath(new URL("../dist/web", import.meta.url));

/** The development session key's file under `DATA_DIR` (its own: not the signing-keys KEK beside it). */
export const DEV_SESSION_KEY_FILE = "console-session-key";

/** Where the browser's API calls go, per owning service. */
export interface UpstreamUrls {
  readonly licensing: string;
  readonly signingKeys: string;
  readonly audit: string;
  readonly fleetSweep: string;
}

/** The console's client at the OIDC issuer. */
export interface OidcClientConfig {
  /** The issuer identifier; discovery reads `<issuer>/.well-known/openid-configuration`. */
  readonly issuer: string;
  readonly clientId: string;
  /** The client secret, or the file holding it (read when the console first talks to the issuer). */
  readonly clientSecret: { readonly value: string } | { readonly file: string };
  /** Extra CA certificates (PEM) trusted for the issuer, besides the system's. */
  readonly caPem?: string | undefined;
  /** Space-separated; always includes `openid`. */
  readonly scopes: string;
  /** The claim (dotted path allowed) holding the roles, in the access token or the ID token. */
  readonly rolesClaim: string;
}

/** Everything `startConsole` needs, parsed and validated. */
export interface ConsoleConfig {
  readonly host: string;
  /** 0 picks a free port (tests). */
  readonly port: number;
  /**
   * The origin browsers use (`https://console.example.org`), without a path. Unset → 
   * `https://localhost:<the bound port>`.
   */
  readonly publicUrl?: string | undefined;
  readonly dataDir: string;
  /** The listener's certificate and key, and the platform CA the services' certificates chain to. */
  readonly tls: { readonly certPem: string; readonly keyPem: string; readonly caPem: string; readonly source: "files" | "dev-pki" };
  readonly upstreams: UpstreamUrls;
  readonly oidc: OidcClientConfig;
  readonly sessionIdleTimeoutMs: number;
  readonly sessionMaxAgeMs: number;
  readonly maxSessions: number;
  /** Absolute path of the built web app (`index.html`, `assets/`). */
  readonly webRoot: string;
  readonly logLevel: string;
  /** `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`: where the forwarded calls' trace spans go; unset → no tracing. */
  readonly tracing?: TracingSettings | undefined;
  /** `DATABASE_URL`; unset → SQLite `<dataDir>/console.sqlite`. */
  readonly databaseUrl?: string | undefined;
  /** PostgreSQL schema (default `console`); tests isolate with it. */
  readonly databaseSchema?: string | undefined;
  /** `SESSION_KEY`/`SESSION_KEY_FILE` (32 bytes), or development: generated into `<dataDir>/console-session-key`. */
  readonly sessionKey: { readonly kind: "configured"; readonly key: Uint8Array } | { readonly kind: "dev"; readonly dataDir: string };
  /** `ADMIN_PORT`: plain-HTTP `/healthz`, `/readyz`, `/metrics`; unset → none, 0 → a free port (tests). */
  readonly adminPort?: number | undefined;
  /** `READINESS_INTERVAL`: how often the database is probed; default 2 s. */
  readonly readinessIntervalMs?: number | undefined;
  /** Test seams: a logger, a clock (ms since the epoch), and shrunk HTTP timeouts. */
  readonly logger?: Logger | undefined;
  readonly now?: (() => number) | undefined;
  /** How many sign-ins may wait for their callback; default 1000 (`MAX_PENDING_LOGINS`, pending-logins.ts). */
  readonly maxPendingLogins?: number | undefined;
  /** The whole request (headers and body) must arrive within this; default 30 s. */
  readonly requestTimeoutMs?: number | undefined;
  /** A forwarded call's deadline at the service; default 30 s. */
  readonly upstreamTimeoutMs?: number | undefined;
}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];
const MAX_SESSIONS_LIMIT = 1_000_000;
// RFC 6749 scope-token characters.
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]{1,128}$/;
const PRINTABLE = /^[\x21-\x7E]{1,256}$/;

/** Reads and validates the console configuration from the environment. */
export async function readConsoleConfig(env: NodeJS.ProcessEnv): Promise<ConsoleConfig> {
  const get = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value === "" ? undefined : value;
  };
  const production = get("NODE_ENV") === "production";

  // Everything that needs no I/O first, so a typo fails before any file is read or written.
  const host = get("HOST") ?? "127.0.0.1";
  const port = parsePort(get("PORT"), DEFAULT_CONSOLE_PORT);
  const dataDir = resolve(get("DATA_DIR") ?? "data");
  const tracing = readTracingSettings(get);
  const logLevel = get("LOG_LEVEL") ?? "info";
  if (!LOG_LEVELS.includes(logLevel)) throw new ConfigError("LOG_LEVEL", `must be one of ${LOG_LEVELS.join(", ")}`);

  const publicUrlText = get("PUBLIC_URL");
  const publicUrl = publicUrlText === undefined ? undefined : originOnly("PUBLIC_URL", publicUrlText, "the console's public https:// origin");
  const upstreams: UpstreamUrls = {
    licensing: originOnly("LICENSING_URL", get("LICENSING_URL") ?? "https://localhost:7443", "the licensing service"),
    signingKeys: originOnly("SIGNING_KEYS_URL", get("SIGNING_KEYS_URL") ?? "https://localhost:7444", "the signing-keys service"),
    audit: originOnly("AUDIT_URL", get("AUDIT_URL") ?? "https://localhost:7445", "the audit service"),
    fleetSweep: originOnly("FLEET_SWEEP_URL", get("FLEET_SWEEP_URL") ?? "https://localhost:7446", "the fleet-sweep service"),
  };

  const sessionIdleTimeoutMs = parseDurationVariable("SESSION_IDLE_TIMEOUT", get("SESSION_IDLE_TIMEOUT"), {
    default: DEFAULT_SESSION_IDLE_TIMEOUT_MS,
    min: 60_000,
    max: 24 * 3_600_000,
    range: "from 1m to 24h",
  });
  const sessionMaxAgeMs = parseDurationVariable("SESSION_MAX_AGE", get("SESSION_MAX_AGE"), {
    default: DEFAULT_SESSION_MAX_AGE_MS,
    min: 5 * 60_000,
    max: 30 * 86_400_000,
    range: "from 5m to 30d",
  });
  if (sessionIdleTimeoutMs > sessionMaxAgeMs) throw new ConfigError("SESSION_IDLE_TIMEOUT", "must not be longer than SESSION_MAX_AGE");
  const maxSessionsText = get("MAX_SESSIONS");
  if (maxSessionsText !== undefined && (!/^\d{1,7}$/.test(maxSessionsText) || Number(maxSessionsText) < 1 || Number(maxSessionsText) > MAX_SESSIONS_LIMIT)) {
    throw new ConfigError("MAX_SESSIONS", `must be a whole number from 1 to ${MAX_SESSIONS_LIMIT}`);
  }
  const maxSessions = maxSessionsText === undefined ? DEFAULT_MAX_SESSIONS : Number(maxSessionsText);
  const webRoot = resolve(get("WEB_ROOT") ?? DEFAULT_WEB_ROOT);

  const databaseUrl = get("DATABASE_URL");
  try {
    driverForUrl(databaseUrl);
  } catch (err) {
    if (err instanceof DatabaseConfigError) throw new ConfigError("DATABASE_URL", "must be a postgres:// URL (unset: SQLite under DATA_DIR)");
    throw err;
  }
  const { readinessIntervalMs, adminPort } = readProbeSettings(get, port);
  const sessionKeyText = get("SESSION_KEY");
  const sessionKeyFile = get("SESSION_KEY_FILE");
  if (sessionKeyText !== undefined && sessionKeyFile !== undefined) throw new ConfigError("SESSION_KEY_FILE", "set SESSION_KEY or SESSION_KEY_FILE, not both");
  if (sessionKeyText !== undefined) sessionKeyFrom("SESSION_KEY", sessionKeyText);

  const tlsFiles = allOrNone(get, ["TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CA_FILE"]);
  if (production && !tlsFiles) throw new ConfigError("TLS_CERT_FILE", "is required when NODE_ENV=production");

  const issuerText = get("OIDC_ISSUER");
  if (production && issuerText === undefined) throw new ConfigError("OIDC_ISSUER", "is required when NODE_ENV=production");
  const issuer = issuerText === undefined ? DEV_OIDC_ISSUER : parseIssuer(issuerText);
  const clientIdText = get("OIDC_CLIENT_ID");
  if (production && clientIdText === undefined) throw new ConfigError("OIDC_CLIENT_ID", "is required when NODE_ENV=production");
  const clientId = clientIdText ?? DEFAULT_OIDC_CLIENT_ID;
  if (!PRINTABLE.test(clientId)) throw new ConfigError("OIDC_CLIENT_ID", "must be 1–256 printable characters without spaces");
  const secretText = get("OIDC_CLIENT_SECRET");
  const secretFile = get("OIDC_CLIENT_SECRET_FILE");
  if (secretText !== undefined && secretFile !== undefined) {
    throw new ConfigError("OIDC_CLIENT_SECRET", "set OIDC_CLIENT_SECRET or OIDC_CLIENT_SECRET_FILE, not both");
  }
  if (secretText !== undefined) checkSecret("OIDC_CLIENT_SECRET", secretText);
  if (production && secretText === undefined && secretFile === undefined) {
    throw new ConfigError("OIDC_CLIENT_SECRET_FILE", "is required when NODE_ENV=production (or OIDC_CLIENT_SECRET)");
  }
  if (issuerText !== undefined && secretText === undefined && secretFile === undefined) {
    throw new ConfigError("OIDC_CLIENT_SECRET", `is required when OIDC_ISSUER is set (or OIDC_CLIENT_SECRET_FILE)`);
  }
  if (production && sessionKeyText === undefined && sessionKeyFile === undefined) {
    throw new ConfigError("SESSION_KEY", "is required when NODE_ENV=production (or SESSION_KEY_FILE), the same on every replica");
  }
  const scopes = (get("OIDC_SCOPES") ?? DEFAULT_OIDC_SCOPES).split(/\s+/);
  if (!scopes.every((s) => SCOPE_TOKEN.test(s)) || scopes.length > 32) throw new ConfigError("OIDC_SCOPES", "must be space-separated scope names");
  if (!scopes.includes("openid")) throw new ConfigError("OIDC_SCOPES", 'must include "openid"');
  const rolesClaim = get("OIDC_ROLES_CLAIM") ?? "roles";
  if (!PRINTABLE.test(rolesClaim)) throw new ConfigError("OIDC_ROLES_CLAIM", "must be a claim name or dotted path");

  // Files, one after the other, so the error names the first unreadable one.
  let tls: ConsoleConfig["tls"];
  if (tlsFiles) {
    const certPem = await readPem("TLS_CERT_FILE", tlsFiles[0]);
    const keyPem = await readPem("TLS_KEY_FILE", tlsFiles[1]);
    const caPem = await readPem("TLS_CA_FILE", tlsFiles[2]);
    tls = { certPem, keyPem, caPem, source: "files" };
  } else {
    const pkiDir = join(dataDir, "pki");
    const pki = await ensureDevPki({ dir: pkiDir, services: ["console"] });
    const own = pki.services.console;
    if (!own) throw new ConfigError("DATA_DIR", `the dev PKI in ${pkiDir} has no certificate for the console`);
    tls = { certPem: own.certPem, keyPem: own.keyPem, caPem: pki.caCertPem, source: "dev-pki" };
  }

  const oidcCaFile = get("OIDC_CA_FILE");
  // The dev identity provider listens with a dev PKI certificate: trust the dev CA for it.
  const caPem = oidcCaFile !== undefined ? await readCertificates("OIDC_CA_FILE", oidcCaFile) : issuerText === undefined ? tls.caPem : undefined;
  let clientSecret: OidcClientConfig["clientSecret"];
  if (secretText !== undefined) clientSecret = { value: secretText };
  else if (secretFile !== undefined) clientSecret = { value: await readClientSecret(secretFile, "OIDC_CLIENT_SECRET_FILE") };
  else clientSecret = { file: join(dataDir, DEV_CLIENT_SECRET_FILE) };

  const sessionKey: ConsoleConfig["sessionKey"] =
    sessionKeyText !== undefined
      ? { kind: "configured", key: sessionKeyFrom("SESSION_KEY", sessionKeyText) }
      : sessionKeyFile !== undefined
        ? { kind: "configured", key: sessionKeyFrom("SESSION_KEY_FILE", await readSecretFile("SESSION_KEY_FILE", sessionKeyFile)) }
        : { kind: "dev", dataDir };

  return {
    host,
    port,
    publicUrl,
    dataDir,
    tls,
    upstreams,
    oidc: { issuer, clientId, clientSecret, caPem, scopes: scopes.join(" "), rolesClaim },
    sessionIdleTimeoutMs,
    sessionMaxAgeMs,
    maxSessions,
    webRoot,
    logLevel,
    tracing,
    databaseUrl,
    sessionKey,
    adminPort,
    readinessIntervalMs,
  };
}

/**
 * The session key of a development console: `<dataDir>/console-session-key`, created (32 random
 * bytes, base64, mode 0600) on first use and never overwritten, so sessions survive a restart.
 */
export async function loadOrCreateDevSessionKey(dataDir: string): Promise<Uint8Array> {
  const path = join(dataDir, DEV_SESSION_KEY_FILE);
  return sessionKeyFrom("DATA_DIR", await readOrCreateFile(path, () => `${randomBytes(32).toString("base64")}\n`), path);
}

function sessionKeyFrom(variable: string, value: string, path?: string): Uint8Array {
  try {
    return parseKek(value);
  } catch (err) {
    // parseKek never echoes the value; its words are about a "key-encryption key", ours a session key.
    const message = (err as Error).message.replace("key-encryption key", "the session key");
    throw new ConfigError(variable, path === undefined ? message : `${path}: ${message}`);
  }
}

async function readSecretFile(variable: string, path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    throw new ConfigError(variable, `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
}

/**
 * Reads a client secret file: its trimmed content, 1–4096 printable characters. `variable` names
 * the setting in the error (a ConfigError, so at start the process exits 2).
 */
export async function readClientSecret(path: string, variable: string): Promise<string> {
  let text: string;
  try {
    text = (await readFile(path, "utf8")).trim();
  } catch (err) {
    throw new ConfigError(variable, `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
  checkSecret(variable, text, path);
  return text;
}

function checkSecret(variable: string, value: string, path?: string): void {
  // Never echo the value: it is a credential.
  if (!/^[\x20-\x7E]{1,4096}$/.test(value)) {
    throw new ConfigError(variable, `${path ?? "the value"} must hold 1–4096 printable characters`);
  }
}

/** An https:// URL that is an origin only (no path, query, fragment or credentials), as its origin. */
function originOnly(variable: string, value: string, what: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(variable, `must be an https:// URL of ${what}`);
  }
  if (url.protocol !== "https:" || url.username || url.password || url.search || url.hash || url.pathname !== "/") {
    throw new ConfigError(variable, `must be an https:// URL of ${what}, without a path`);
  }
  return url.origin;
}

function parseIssuer(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError("OIDC_ISSUER", "must be the https:// URL of the OIDC issuer");
  }
  if (url.protocol !== "https:" || url.username || url.password || url.search || url.hash) {
    throw new ConfigError("OIDC_ISSUER", "must be the https:// URL of the OIDC issuer, without a query or fragment");
  }
  // The issuer identifier is compared exactly with the discovery document's `issuer`.
  return value;
}

