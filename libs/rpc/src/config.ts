import { randomBytes } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { ServiceName } from "@lcp/domain";
import { DEFAULT_TRUST_DOMAIN, ensureDevPki, isValidTrustDomain } from "@lcp/pki";
import { createAdminTokenVerifier, ensureDevAdminIssuer, parseCertificateBundle, parseDuration, readOrCreateFile, type AdminTokenVerifier } from "@lcp/tokens";
import type { JSONWebKeySet } from "jose";
import { DEFAULT_DENIED_AUDIT_WINDOW_MS } from "./denial-audit.js";
import { TICKET_SECRET_BYTES, type ServerTls } from "./server.js";
import { DEFAULT_CONNECTION_LIMITS, type ConnectionLimits } from "./connections.js";
import type { TlsFiles } from "./tls-reload.js";

/** A setting that is missing, malformed or contradicts another; names the variable. */
export class ConfigError extends Error {
  override name = "ConfigError";
  constructor(
    /** The environment variable at fault. */
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
  }
}

/** Where admin bearer tokens come from and how they are read. */
export interface AdminTokensConfig {
  readonly issuer: string;
  readonly audience: string;
  /** Inline public keys (the dev issuer); exclusive with `jwksUrl`. */
  readonly jwks?: JSONWebKeySet;
  /** The OIDC issuer's `jwks_uri`. */
  readonly jwksUrl?: URL;
  /** `OIDC_CA_FILE`: PEM certificates trusted in addition to the system roots when fetching `jwksUrl`. */
  readonly jwksCaPem?: string;
  /** Claim holding the roles (dotted path allowed). */
  readonly rolesClaim: string;
  /** True when this is the generated development issuer, not an organisation's. */
  readonly dev: boolean;
}

/** The settings every app shares, parsed once at start (CONVENTIONS.md "Each app"). */
export interface CommonConfig {
  readonly app: ServiceName;
  readonly host: string;
  readonly port: number;
  /** Absolute; holds SQLite files and the dev PKI. */
  readonly dataDir: string;
  /** `DATABASE_URL` if set (apps default to SQLite under `dataDir`). */
  readonly databaseUrl?: string;
  readonly trustDomain: string;
  /**
   * The listener's certificate and the platform CA, from files or the dev PKI; `files` names the
   * files (read again on SIGHUP and every `tlsReloadIntervalMs`, libs/rpc tls-reload.ts).
   */
  readonly tls: ServerTls & { readonly source: "files" | "dev-pki"; readonly files?: TlsFiles | undefined };
  /** `TLS_RELOAD_INTERVAL`: how often the TLS files are looked at for a rotation; 0 (`off`) → only on SIGHUP; unset in a config built by hand → never. */
  readonly tlsReloadIntervalMs?: number | undefined;
  readonly adminTokens: AdminTokensConfig;
  readonly logLevel: string;
  /**
   * `DENIED_AUDIT_WINDOW`: how long repeats of one refusal are counted into one `authz.denied`
   * event (`createServer`'s `deniedAuditWindowMs`); unset in a config built by hand → the default.
   */
  readonly deniedAuditWindowMs?: number | undefined;
  /**
   * `IDLE_TIMEOUT`, `MAX_STREAMS_PER_CONNECTION`, `KEEPALIVE_INTERVAL`, `KEEPALIVE_TIMEOUT`
   * (`createServer`'s `connectionLimits`); unset in a config built by hand → the defaults.
   */
  readonly connectionLimits?: ConnectionLimits | undefined;
  /**
   * `ADMIN_PORT`: the plain-HTTP admin listener on `host` (`/healthz`, `/readyz`, `/metrics`);
   * unset → none is opened.
   */
  readonly adminPort?: number | undefined;
  /** `READINESS_INTERVAL`: how often readiness probes the database; unset in a config built by hand → the default. */
  readonly readinessIntervalMs?: number | undefined;
  /** Where trace spans go (`OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`); unset → tracing is off. */
  readonly tracing?: TracingSettings | undefined;
}

/** Trace export settings (the rest of the standard `OTEL_*` variables are read by the SDK itself). */
export interface TracingSettings {
  /** The OTLP/HTTP URL spans are POSTed to, `/v1/traces` included. */
  readonly url: string;
}

/**
 * The trace export URL from the standard OpenTelemetry variables, or undefined when tracing is off:
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is used as it is, else `OTEL_EXPORTER_OTLP_ENDPOINT` with
 * `/v1/traces` appended (as the OTLP exporter specification says); `OTEL_SDK_DISABLED=true` turns
 * tracing off whatever they say. Anything but an http(s) URL is refused, naming the variable.
 */
export function readTracingSettings(get: (name: string) => string | undefined): TracingSettings | undefined {
  if (get("OTEL_SDK_DISABLED")?.toLowerCase() === "true") return undefined;
  const specific = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
  const variable = specific !== undefined ? "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" : "OTEL_EXPORTER_OTLP_ENDPOINT";
  const text = specific ?? get("OTEL_EXPORTER_OTLP_ENDPOINT");
  if (text === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(specific !== undefined ? text : `${text.replace(/\/+$/, "")}/v1/traces`);
  } catch {
    throw new ConfigError(variable, "is not a URL");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new ConfigError(variable, "must be an http:// or https:// URL (OTLP over HTTP)");
  if (url.username !== "" || url.password !== "") throw new ConfigError(variable, "must not carry credentials; use OTEL_EXPORTER_OTLP_HEADERS");
  return { url: url.href };
}

/** The default `READINESS_INTERVAL`: a lost database shows as NOT_SERVING within about this long. */
export const DEFAULT_READINESS_INTERVAL_MS = 2_000;
/** The shortest `READINESS_INTERVAL`: shorter only loads the database with probes. */
export const MIN_READINESS_INTERVAL_MS = 500;
/** The longest `READINESS_INTERVAL`: longer keeps traffic flowing to a replica that lost its database. */
export const MAX_READINESS_INTERVAL_MS = 60_000;

/** The longest `DENIED_AUDIT_WINDOW`: a longer one would hold a flood's count back for too long. */
export const MAX_DENIED_AUDIT_WINDOW_MS = 3_600_000;

/** Per-app defaults for `readCommonConfig`. */
export interface CommonDefaults {
  /** licensing 7443, signing-keys 7444, audit 7445, fleet-sweep 7446. */
  readonly port: number;
  /** Default `127.0.0.1`. */
  readonly host?: string;
}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

/**
 * Reads the shared settings from the environment, failing fast with a `ConfigError` naming
 * the variable:
 * - `HOST`, `PORT` (the app's default), `DATA_DIR` (default `./data`), `DATABASE_URL`,
 *   `TRUST_DOMAIN` (default `lcp.local`), `LOG_LEVEL` (default `info`);
 * - `TLS_CERT_FILE`, `TLS_KEY_FILE`, `TLS_CA_FILE`: all three or none; with none, the
 *   development PKI in `<DATA_DIR>/pki/` is created on first start and used;
 * - `TLS_RELOAD_INTERVAL` (default `60s`, `1s` … `1h`, or `off`): how often those files are read
 *   again; a changed set that passes the checks is served to new handshakes (SIGHUP does the same
 *   at once); only with the TLS files;
 * - `OIDC_ISSUER`, `OIDC_AUDIENCE`, `OIDC_JWKS_URL`, `OIDC_ROLES_CLAIM` (default `roles`):
 *   the first three together or none; with none, the dev admin issuer in `<DATA_DIR>/pki/`;
 * - `OIDC_CA_FILE` (only with `OIDC_ISSUER`): a PEM bundle trusted in addition to the system roots
 *   when fetching the issuer's JWKS (an issuer behind a private CA, or `npm start`'s dev identity
 *   provider behind the dev PKI); a file that cannot be read or holds no parsable certificate is refused;
 * - `DENIED_AUDIT_WINDOW`: a duration (`0s` … `1h`, default `60s`); repeats of one refused call
 *   within it are audited as one count, `0s` audits every refusal on its own.
 * - `IDLE_TIMEOUT` (default `2m`, `1s` … `1h`): a connection with no open call is closed after it;
 *   `MAX_STREAMS_PER_CONNECTION` (default 100, 1 … 10000): concurrent calls on one HTTP/2
 *   connection; `KEEPALIVE_INTERVAL` (default `60s`) and `KEEPALIVE_TIMEOUT` (default `20s`,
 *   each `1s` … `1h`): a connection holding a stream that was quiet that long is pinged, and
 *   dropped when the ping goes unanswered that long (libs/rpc connections.ts).
 * - `READINESS_INTERVAL` (default `2s`, `500ms` … `1m`): how often the app probes its database
 *   (`select 1`); while it fails, `grpc.health.v1` reports NOT_SERVING for `""` and every service
 *   (readiness; liveness is the process answering at all).
 * - `ADMIN_PORT` (unset → none; 1 … 65535, not `PORT`): a plain-HTTP listener on `HOST` for kubelet
 *   and Prometheus: `GET /healthz` (liveness), `GET /readyz` (200 when SERVING, else 503 and the
 *   reason), `GET /metrics` (the same registry as the TLS listener's `/metrics`).
 * - `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: trace export over OTLP/HTTP
 *   ({@link readTracingSettings}); unset → no tracing.
 * With `NODE_ENV=production` the development fallbacks are refused: a generated CA or token
 * issuer must never silently guard a real deployment.
 */
export async function readCommonConfig(
  env: NodeJS.ProcessEnv,
  app: ServiceName,
  defaults: CommonDefaults,
): Promise<CommonConfig> {
  const get = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value === "" ? undefined : value;
  };
  const production = get("NODE_ENV") === "production";

  const host = get("HOST") ?? defaults.host ?? "127.0.0.1";
  const port = parsePort(get("PORT"), defaults.port);
  const dataDir = resolve(get("DATA_DIR") ?? "data");
  const pkiDir = join(dataDir, "pki");

  const databaseUrl = get("DATABASE_URL");
  if (databaseUrl !== undefined && !/^(postgres(ql)?|sqlite):/.test(databaseUrl)) {
    throw new ConfigError("DATABASE_URL", "must be a postgres:// or sqlite: URL");
  }

  const trustDomain = get("TRUST_DOMAIN") ?? DEFAULT_TRUST_DOMAIN;
  if (!isValidTrustDomain(trustDomain)) {
    throw new ConfigError("TRUST_DOMAIN", `${JSON.stringify(trustDomain)} is not a lowercase DNS-like name`);
  }

  const logLevel = get("LOG_LEVEL") ?? "info";
  if (!LOG_LEVELS.includes(logLevel)) throw new ConfigError("LOG_LEVEL", `must be one of ${LOG_LEVELS.join(", ")}`);

  const deniedAuditWindowMs = parseDeniedAuditWindow(get("DENIED_AUDIT_WINDOW"));
  const connectionLimits = parseConnectionLimits(get);
  const { readinessIntervalMs, adminPort } = readProbeSettings(get, port);

  const tracing = readTracingSettings(get);

  // Validate everything that needs no I/O before touching the disk.
  const tlsFiles = allOrNone(get, ["TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CA_FILE"]);
  const tlsReloadIntervalMs = parseTlsReloadInterval(get("TLS_RELOAD_INTERVAL"));
  // The dev PKI is never rotated in place: a setting that would do nothing is a mistake.
  if (get("TLS_RELOAD_INTERVAL") !== undefined && !tlsFiles) throw new ConfigError("TLS_RELOAD_INTERVAL", "only applies with TLS_CERT_FILE, TLS_KEY_FILE and TLS_CA_FILE");
  const oidc = allOrNone(get, ["OIDC_ISSUER", "OIDC_AUDIENCE", "OIDC_JWKS_URL"]);
  let jwksUrl: URL | undefined;
  if (oidc) {
    try {
      jwksUrl = new URL(oidc[2]);
    } catch {
      throw new ConfigError("OIDC_JWKS_URL", "is not a URL");
    }
    // Keys fetched over plain HTTP could be swapped by anyone on the path.
    if (jwksUrl.protocol !== "https:" && !["localhost", "127.0.0.1", "[::1]"].includes(jwksUrl.hostname)) {
      throw new ConfigError("OIDC_JWKS_URL", "must be https (http only for localhost)");
    }
  }
  const oidcCaFile = get("OIDC_CA_FILE");
  if (oidcCaFile !== undefined && !oidc) throw new ConfigError("OIDC_CA_FILE", "only applies with OIDC_ISSUER, OIDC_AUDIENCE and OIDC_JWKS_URL");
  if (oidcCaFile !== undefined && jwksUrl?.protocol !== "https:") throw new ConfigError("OIDC_CA_FILE", "only applies to an https OIDC_JWKS_URL");
  if (production && !tlsFiles) throw new ConfigError("TLS_CERT_FILE", "is required when NODE_ENV=production");
  if (production && !oidc) throw new ConfigError("OIDC_ISSUER", "is required when NODE_ENV=production");
  const rolesClaim = get("OIDC_ROLES_CLAIM") ?? "roles";

  let tls: CommonConfig["tls"];
  if (tlsFiles) {
    // One after the other, so the error always names the first unreadable file.
    const certPem = await readPem("TLS_CERT_FILE", tlsFiles[0]);
    const keyPem = await readPem("TLS_KEY_FILE", tlsFiles[1]);
    const caPem = await readPem("TLS_CA_FILE", tlsFiles[2]);
    tls = { certPem, keyPem, caPem, source: "files", files: { cert: tlsFiles[0], key: tlsFiles[1], ca: tlsFiles[2] } };
  } else {
    const pki = await ensureDevPki({ dir: pkiDir, trustDomain });
    const own = pki.services[app];
    if (!own) throw new ConfigError("DATA_DIR", `the dev PKI in ${pkiDir} has no certificate for ${app}`);
    tls = { certPem: own.certPem, keyPem: own.keyPem, caPem: pki.caCertPem, source: "dev-pki" };
  }

  let adminTokens: AdminTokensConfig;
  if (oidc) {
    const jwksCaPem = oidcCaFile === undefined ? undefined : await readCertificates("OIDC_CA_FILE", oidcCaFile);
    adminTokens = { issuer: oidc[0], audience: oidc[1], jwksUrl, ...(jwksCaPem === undefined ? {} : { jwksCaPem }), rolesClaim, dev: false };
  } else {
    const dev = await ensureDevAdminIssuer(pkiDir);
    adminTokens = { issuer: dev.issuer, audience: dev.audience, jwks: dev.jwks, rolesClaim, dev: true };
  }

  return { app, host, port, dataDir, databaseUrl, trustDomain, tls, tlsReloadIntervalMs, adminTokens, logLevel, deniedAuditWindowMs, connectionLimits, adminPort, readinessIntervalMs, tracing };
}

/** The default `TLS_RELOAD_INTERVAL`: the kubelet refreshes a mounted Secret within about a minute too. */
export const DEFAULT_TLS_RELOAD_INTERVAL_MS = 60_000;

/** `TLS_RELOAD_INTERVAL`: `off` → 0 (SIGHUP only), else a duration from 1s to 1h. */
function parseTlsReloadInterval(value: string | undefined): number {
  if (value === "off") return 0;
  return parseDurationVariable("TLS_RELOAD_INTERVAL", value, { default: DEFAULT_TLS_RELOAD_INTERVAL_MS, min: SECOND_MS, max: HOUR_MS, range: "from 1s to 1h, or off" });
}

const SECOND_MS = 1_000;
const HOUR_MS = 3_600_000;
/** The most streams `MAX_STREAMS_PER_CONNECTION` may allow: beyond it one connection is a flood again. */
export const MAX_STREAMS_PER_CONNECTION_LIMIT = 10_000;

function parseConnectionLimits(get: (name: string) => string | undefined): ConnectionLimits {
  const duration = (variable: string, fallback: number): number => {
    const value = get(variable);
    if (value === undefined) return fallback;
    let ms: number;
    try {
      ms = parseDuration(value);
    } catch (err) {
      throw new ConfigError(variable, (err as Error).message);
    }
    if (ms < SECOND_MS || ms > HOUR_MS) throw new ConfigError(variable, "must be from 1s to 1h");
    return ms;
  };
  const streams = get("MAX_STREAMS_PER_CONNECTION");
  if (streams !== undefined && (!/^\d+$/.test(streams) || Number(streams) < 1 || Number(streams) > MAX_STREAMS_PER_CONNECTION_LIMIT)) {
    throw new ConfigError("MAX_STREAMS_PER_CONNECTION", `must be a whole number from 1 to ${MAX_STREAMS_PER_CONNECTION_LIMIT}`);
  }
  return {
    idleTimeoutMs: duration("IDLE_TIMEOUT", DEFAULT_CONNECTION_LIMITS.idleTimeoutMs),
    maxStreamsPerConnection: streams === undefined ? DEFAULT_CONNECTION_LIMITS.maxStreamsPerConnection : Number(streams),
    keepaliveIntervalMs: duration("KEEPALIVE_INTERVAL", DEFAULT_CONNECTION_LIMITS.keepaliveIntervalMs),
    keepaliveTimeoutMs: duration("KEEPALIVE_TIMEOUT", DEFAULT_CONNECTION_LIMITS.keepaliveTimeoutMs),
  };
}

function parseDeniedAuditWindow(value: string | undefined): number {
  return parseDurationVariable("DENIED_AUDIT_WINDOW", value, { default: DEFAULT_DENIED_AUDIT_WINDOW_MS, max: MAX_DENIED_AUDIT_WINDOW_MS, range: "at most 1h" });
}

/**
 * A duration variable (`500ms`, `5s`, `2m`): its default when unset, else parsed and held to
 * `[min, max]`, failing with a ConfigError naming the variable (`range` says the bounds in words).
 */
export function parseDurationVariable(
  variable: string,
  value: string | undefined,
  bounds: { default: number; min?: number; max: number; range: string },
): number {
  if (value === undefined) return bounds.default;
  let ms: number;
  try {
    ms = parseDuration(value);
  } catch (err) {
    throw new ConfigError(variable, (err as Error).message);
  }
  if (ms < (bounds.min ?? 0) || ms > bounds.max) throw new ConfigError(variable, `must be ${bounds.range}`);
  return ms;
}

/** The bearer-token verifier for a parsed `adminTokens` config, ready for `createServer`. */
export function adminTokenVerifierFrom(config: AdminTokensConfig): AdminTokenVerifier {
  const jwks = config.jwks ?? config.jwksUrl;
  if (!jwks) throw new ConfigError("OIDC_JWKS_URL", "no keys configured for admin tokens");
  return createAdminTokenVerifier({
    issuer: config.issuer,
    audience: config.audience,
    jwks,
    ...(config.jwksCaPem === undefined ? {} : { jwksCaPem: config.jwksCaPem }),
    rolesClaim: config.rolesClaim,
  });
}

/** Parses a TCP port; `fallback` when unset. */
export function parsePort(value: string | undefined, fallback: number, variable = "PORT"): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) > 65_535) {
    throw new ConfigError(variable, `${JSON.stringify(value)} is not a port number (0–65535)`);
  }
  return Number(value);
}

/** The three variables' values when all are set, undefined when none is; a ConfigError naming the first missing one otherwise. */
export function allOrNone(get: (name: string) => string | undefined, names: readonly [string, string, string]): [string, string, string] | undefined {
  const values = names.map(get);
  if (values.every((v) => v === undefined)) return undefined;
  const missing = names.find((_, i) => values[i] === undefined);
  if (missing) {
    const given = names.filter((_, i) => values[i] !== undefined).join(", ");
    throw new ConfigError(missing, `is required when ${given} is set`);
  }
  return values as [string, string, string];
}

/** Reads a PEM file named by `variable`; a ConfigError naming it when it cannot be read or holds no PEM. */
export async function readPem(variable: string, path: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new ConfigError(variable, `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
  if (!text.includes("-----BEGIN ")) throw new ConfigError(variable, `${path} is not a PEM file`);
  return text;
}

/** A PEM bundle of certificates, each of which must parse; a ConfigError naming `variable` otherwise. */
export async function readCertificates(variable: string, path: string): Promise<string> {
  const text = await readPem(variable, path);
  try {
    parseCertificateBundle(text);
  } catch (err) {
    throw new ConfigError(variable, `${path} ${(err as Error).message}`);
  }
  return text;
}

/** The file under `DATA_DIR` holding a listener's session-ticket secret when no shared file is named. */
export const TICKET_SECRET_FILE = "tls-session-ticket.key";

/**
 * The session-ticket secret for `createServer({ sessionTickets })`: {@link TICKET_SECRET_BYTES}
 * bytes, base64 (or hex) in a file. With `file` (replicas sharing one, named by `variable`) the
 * file must exist, hold exactly that, and be readable by its owner only; without it
 * `<dataDir>/tls-session-ticket.key` is created (mode 0600) on first start and read back on every
 * later one, so a restarted process accepts the tickets its predecessor issued. A bad file fails
 * fast with a ConfigError naming `variable` (or `DATA_DIR`); the secret itself is never echoed.
 * With `production` the generated file is refused (like the dev KEK and the dev PKI): a secret that
 * lets its holder mint a session for any box must be provisioned and guarded on purpose, and
 * replicas must share it.
 */
export async function loadTicketSecret(options: {
  readonly file?: string | undefined;
  readonly dataDir: string;
  readonly variable: string;
  /** `NODE_ENV=production`: `file` is required. */
  readonly production?: boolean;
}): Promise<Uint8Array> {
  if (options.production === true && options.file === undefined) {
    throw new ConfigError(
      options.variable,
      `is required when NODE_ENV=production; the secret generated under DATA_DIR is refused (create one with openssl rand -base64 ${TICKET_SECRET_BYTES}, mode 600, the same file for every replica)`,
    );
  }
  const variable = options.file !== undefined ? options.variable : "DATA_DIR";
  const path = options.file ?? join(options.dataDir, TICKET_SECRET_FILE);
  let text: string;
  try {
    text = (
      options.file === undefined
        ? await readOrCreateFile(path, () => `${randomBytes(TICKET_SECRET_BYTES).toString("base64")}\n`)
        : await readFile(path, "utf8")
    ).trim();
    // Whoever reads it can mint tickets naming any box: refuse a file others may read, as ssh
    // does. Group access is allowed only for this process's own group: a Kubernetes Secret volume
    // with `fsGroup` is mode 0440, group fsGroup, and that group is the pod's alone.
    const info = await stat(path);
    const mode = info.mode & 0o777;
    const ownGroup = info.gid === process.getgid?.() || (process.getgroups?.() ?? []).includes(info.gid);
    if ((mode & 0o007) !== 0 || ((mode & 0o070) !== 0 && !ownGroup)) {
      throw new ConfigError(variable, `${path} is readable by others (mode ${mode.toString(8)}); it holds the TLS session-ticket secret: chmod 600`);
    }
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(variable, `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
  const bytes = /^[0-9a-fA-F]+$/.test(text) && text.length === TICKET_SECRET_BYTES * 2 ? Buffer.from(text, "hex") : /^[A-Za-z0-9+/]+={0,2}$/.test(text) ? Buffer.from(text, "base64") : undefined;
  if (bytes?.length !== TICKET_SECRET_BYTES) {
    throw new ConfigError(variable, `${path} must hold ${TICKET_SECRET_BYTES} random bytes as base64 (64 characters) or hex (96); e.g. openssl rand -base64 ${TICKET_SECRET_BYTES}`);
  }
  return new Uint8Array(bytes);
}

/**
 * `READINESS_INTERVAL` (default 2 s, 500 ms–1 m) and `ADMIN_PORT` (unset: no admin listener),
 * read the same way by every app, the console included. `port` is the app's own `PORT`.
 */
export function readProbeSettings(get: (name: string) => string | undefined, port: number): { readinessIntervalMs: number; adminPort: number | undefined } {
  const readinessIntervalMs = parseDurationVariable("READINESS_INTERVAL", get("READINESS_INTERVAL"), {
    default: DEFAULT_READINESS_INTERVAL_MS,
    min: MIN_READINESS_INTERVAL_MS,
    max: MAX_READINESS_INTERVAL_MS,
    range: "from 500ms to 1m",
  });
  const adminPortText = get("ADMIN_PORT");
  const adminPort = adminPortText === undefined ? undefined : parsePort(adminPortText, 0, "ADMIN_PORT");
  // Port 0 would open a listener nobody can be told about; the same port as PORT cannot be bound twice.
  if (adminPort === 0) throw new ConfigError("ADMIN_PORT", "must be a port number from 1 to 65535 (unset it to open no admin listener)");
  if (adminPort !== undefined && adminPort === port) throw new ConfigError("ADMIN_PORT", `must differ from PORT (${port})`);
  return { readinessIntervalMs, adminPort };
}
