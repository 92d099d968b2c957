/**
 * The licensing configuration: the settings every app shares (`readCommonConfig`: HOST, PORT,
 * DATA_DIR, DATABASE_URL, TRUST_DOMAIN, TLS_*, OIDC_*, LOG_LEVEL) plus licensing's own, parsed
 * once at start. A bad value fails fast with a ConfigError naming the variable.
 *
 * - `SIGNING_KEYS_URL`: signing-keys (`Sign`, `IssueApplianceCertificate`, `GetJwks`, the appliance
 *   trust bundle), called over mTLS with licensing's service certificate; default
 *   `https://localhost:7444`.
 * - `AUDIT_URL`: the audit service; when set, the outbox relay delivers events to its `Append`;
 *   when unset, events wait in the outbox (nothing is lost).
 * - `TOKEN_ISSUER`: the `iss` licence and lease tokens carry; must equal signing-keys' own
 *   TOKEN_ISSUER, since it signs them; default `https://lcp.local/licensing`.
 * - `REPLICA_ID`: this replica's name (heartbeat screen, logs); default `<hostname>:<pid>`.
 * - `TLS_TICKET_KEY_FILE`: the TLS session-ticket secret (48 bytes, base64 or hex, mode 0600),
 *   for replicas that should resume each other's sessions; default
 *   `<DATA_DIR>/tls-session-ticket.key`, created on first start (refused when `NODE_ENV=production`:
 *   the file must be provisioned there, the same for every replica). It is what lets 10,000 boxes
 *   resume TLS instead of redoing full handshakes after a restart (README "Heartbeat transport").
 *   The file is read again with the TLS files (SIGHUP, `TLS_RELOAD_INTERVAL`): a rotated secret
 *   is used for new tickets without a restart.
 * - `JWKS_MAX_AGE`: how long a JWKS fetched from signing-keys is believed (a duration, 1s to 5m;
 *   default 5s). It bounds how long a revoked signing key still verifies licence tokens here, and
 *   is also how often this replica looks for a changed key set or heartbeat interval to push to
 *   its connected boxes (REFRESH_KEYS, SET_INTERVAL).
 */
import { hostname } from "node:os";
import type { Logger } from "pino";
import { ConfigError, loadTicketSecret, parseDurationVariable, readCommonConfig, type CommonConfig } from "@lcp/rpc";
import type { FaultInjection } from "./core/deployment-change.js";
import type { DirectivePublisher } from "./core/directive-publisher.js";
import type { HeartbeatLimits } from "./heartbeat/index.js";
import { DEFAULT_JWKS_MAX_AGE_MS } from "./signing-keys.js";

/** The default port of licensing (docs/design.md §12). */
export const DEFAULT_PORT = 7443;
/** Where signing-keys listens by default. */
export const DEFAULT_SIGNING_KEYS_URL = "https://localhost:7444";
/** The default `iss` of licence and lease tokens (the same default as signing-keys'). */
export const DEFAULT_TOKEN_ISSUER = "https://lcp.local/licensing";

/** Everything `startLicensing` needs. */
export interface LicensingConfig extends CommonConfig {
  signingKeysUrl: string;
  /** The audit service's URL; unset leaves events in the outbox. */
  auditUrl?: string | undefined;
  /** `iss` of licence and lease tokens (verification pins it). */
  tokenIssuer: string;
  replicaId: string;
  /** PostgreSQL schema for this app's tables (default `licensing`); tests isolate with it. */
  databaseSchema?: string | undefined;
  /** How often the appliance trust bundle is refetched from signing-keys. Default 5 min. */
  trustRefreshMs?: number;
  /** How long to wait between attempts to fetch the trust bundle at start. Default 1 s. */
  trustRetryMs?: number;
  /**
   * JWKS_MAX_AGE: how long a fetched JWKS is believed, and how often key set and settings are
   * checked for a change to push to connected boxes. Default 5 s (tests shrink it).
   */
  jwksMaxAgeMs?: number;
  /** Seams for tests and for the heartbeat hub: the clock, a logger, the directive publisher, fault injection. */
  now?: () => Date;
  logger?: Logger;
  directivePublisher?: DirectivePublisher;
  faults?: FaultInjection;
  /** Per-stream heartbeat limits (tests shrink or raise them); defaults in heartbeat/session.ts. */
  heartbeatLimits?: Partial<HeartbeatLimits>;
  /** How often held heartbeat streams are checked against the database for lost signals. Default 30 s (tests shrink it). */
  heartbeatStaleCheckMs?: number;
  /** How long one count of the fleet answers `licensing_deployments` scrapes. Default 15 s (tests shrink it). */
  fleetMetricsMaxAgeMs?: number;
  /**
   * The TLS session-ticket secret (`TLS_TICKET_KEY_FILE` or `<DATA_DIR>/tls-session-ticket.key`):
   * with it, boxes resume their TLS sessions across restarts. Unset (tests that build a config by
   * hand): per-process ticket keys, so nothing resumes after a restart.
   */
  sessionTicketSecret?: Uint8Array;
  /**
   * `TLS_TICKET_KEY_FILE` when set: read again with the TLS files (SIGHUP, `TLS_RELOAD_INTERVAL`), so
   * a rotated secret is used without a restart. The generated file under DATA_DIR is not watched.
   */
  sessionTicketFile?: string | undefined;
}

/** Reads and validates the licensing configuration from the environment. */
export async function readLicensingConfig(env: NodeJS.ProcessEnv): Promise<LicensingConfig> {
  const get = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value === "" ? undefined : value;
  };
  // App settings first: they need no I/O, so a typo fails before any PKI is generated.
  const signingKeysUrl = get("SIGNING_KEYS_URL") ?? DEFAULT_SIGNING_KEYS_URL;
  if (!isUrl(signingKeysUrl, ["https:"])) {
    throw new ConfigError("SIGNING_KEYS_URL", "must be an https:// URL of the signing-keys service");
  }
  const auditUrl = get("AUDIT_URL");
  if (auditUrl !== undefined && !isUrl(auditUrl, ["https:"])) {
    throw new ConfigError("AUDIT_URL", "must be an https:// URL of the audit service");
  }
  const tokenIssuer = get("TOKEN_ISSUER") ?? DEFAULT_TOKEN_ISSUER;
  if (!isUrl(tokenIssuer, ["https:", "http:"])) {
    throw new ConfigError("TOKEN_ISSUER", "must be an http(s) URL, equal to signing-keys' TOKEN_ISSUER");
  }
  const replicaId = get("REPLICA_ID") ?? `${hostname()}:${process.pid}`;
  if (!/^[\w.:@-]{1,128}$/.test(replicaId)) {
    throw new ConfigError("REPLICA_ID", "must be 1 to 128 letters, digits or . : @ - _");
  }

  const jwksMaxAgeMs = parseJwksMaxAge(get("JWKS_MAX_AGE"));

  const common = await readCommonConfig(env, "licensing", { port: DEFAULT_PORT });
  const sessionTicketFile = get("TLS_TICKET_KEY_FILE");
  const sessionTicketSecret = await loadTicketSecret({
    file: sessionTicketFile,
    dataDir: common.dataDir,
    variable: "TLS_TICKET_KEY_FILE",
    production: get("NODE_ENV") === "production",
  });
  return { ...common, signingKeysUrl, auditUrl, tokenIssuer, replicaId, sessionTicketSecret, sessionTicketFile, jwksMaxAgeMs };
}

/** JWKS_MAX_AGE: 1 s at least (signing-keys caches its own answer for 1 s), 5 min at most (a revoked key must stop soon). */
function parseJwksMaxAge(value: string | undefined): number {
  return parseDurationVariable("JWKS_MAX_AGE", value, { default: DEFAULT_JWKS_MAX_AGE_MS, min: 1_000, max: 300_000, range: "between 1s and 5m" });
}

function isUrl(value: string, protocols: string[]): boolean {
  try {
    return protocols.includes(new URL(value).protocol);
  } catch {
    return false;
  }
}
