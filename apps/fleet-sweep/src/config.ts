/**
 * Fleet-sweep's configuration: the shared settings (readCommonConfig) plus where licensing and
 * audit are, how often to sweep and how big a Reconcile page is. Parsed once at start; a bad
 * value fails fast naming its variable.
 */
import { ConfigError, adminTokenVerifierFrom, readCommonConfig, type AdminTokenVerifierLike, type ConnectionLimits, type Logger, type ServerTls, type TlsFiles } from "@lcp/rpc";
import { SWEEP_INTERVAL_RANGE_MS } from "@lcp/domain";
import { DurationError, parseDuration } from "@lcp/tokens";

/** Fleet-sweep's default port (docs/design.md §12). */
export const DEFAULT_FLEET_SWEEP_PORT = 7446;
/** Licensing's default address (its default port, 7443). */
export const DEFAULT_LICENSING_URL = "https://localhost:7443";
/** docs/design.md §5 sweep_interval default. */
export const DEFAULT_SWEEP_INTERVAL_MS = 60_000;
/** How often licensing's sweep_interval setting is read (a change takes effect within this). */
export const DEFAULT_SWEEP_SCHEDULE_POLL_MS = 30_000;
/** Deployments per Reconcile page when a request leaves it 0 (proto default). */
export const DEFAULT_SWEEP_PAGE_SIZE = 1_000;
/** The largest Reconcile page (licensing's limit, proto SweepRequest.page_size). */
export const SWEEP_PAGE_MAX = 50_000;
/** Ranges of the fleet a run reconciles side by side: one page statement each in licensing's database. */
export const DEFAULT_SWEEP_PARALLELISM = 2;
/** The most ranges side by side (licensing's SplitFleet allows 64; more than a few only queues in the database). */
export const SWEEP_PARALLELISM_MAX = 16;
/** The run lock's lease: a replica that died frees the lock after this. */
export const DEFAULT_LOCK_LEASE_MS = 60_000;

/** Everything `startFleetSweep` needs. */
export interface FleetSweepConfig {
  /** Interface to bind; default 127.0.0.1. */
  readonly host?: string | undefined;
  /** 0 picks a free port (tests). */
  readonly port: number;
  readonly trustDomain: string;
  /**
   * The listener's certificate, also presented to licensing and audit as the `fleet-sweep` service
   * identity; with `files`, read again on SIGHUP and every `tlsReloadIntervalMs`.
   */
  readonly tls: ServerTls & { readonly files?: TlsFiles | undefined };
  /** `TLS_RELOAD_INTERVAL`; 0 or unset → the TLS files are read again only on SIGHUP. */
  readonly tlsReloadIntervalMs?: number | undefined;
  /** Verifier of admin bearer tokens; none → admins are refused. */
  readonly adminTokens?: AdminTokenVerifierLike | undefined;
  readonly database: {
    readonly databaseUrl?: string | undefined;
    readonly dataDir: string;
    /** PostgreSQL schema; default `fleet_sweep`. */
    readonly schema?: string | undefined;
  };
  /** Licensing's base URL (`ReconcileService`). */
  readonly licensingUrl: string;
  /** Audit's base URL; when set, the outbox relay delivers `fleet.sweep` events there. */
  readonly auditUrl?: string | undefined;
  /**
   * The scheduled runs' interval until licensing has answered with its stored sweep_interval
   * setting, which then drives the schedule; null → on demand only, whatever the setting says.
   */
  readonly sweepIntervalMs: number | null;
  /** How often licensing's sweep_interval setting is read (default {@link DEFAULT_SWEEP_SCHEDULE_POLL_MS}). */
  readonly sweepSchedulePollMs?: number | undefined;
  /** Reconcile page size when a request leaves it 0. */
  readonly pageSize: number;
  /** Ranges of the fleet reconciled side by side (default {@link DEFAULT_SWEEP_PARALLELISM}). */
  readonly parallelism?: number | undefined;
  /** Run lock lease (default 60 s). */
  readonly lockLeaseMs?: number | undefined;
  /** Deadline of each Reconcile call (default 30 s). */
  readonly reconcileTimeoutMs?: number | undefined;
  /** Extra attempts of a Reconcile call that found licensing Unavailable (default 3; it is IDEMPOTENT). */
  readonly reconcileRetries?: number | undefined;
  /** Clock (tests); default the wall clock. */
  readonly now?: (() => Date) | undefined;
  readonly logger?: Logger | undefined;
  readonly logLevel?: string | undefined;
  readonly shutdownGraceMs?: number | undefined;
  /** Repeats of one refused call within this are audited as one count (`DENIED_AUDIT_WINDOW`; default 60 s). */
  readonly deniedAuditWindowMs?: number | undefined;
  /** Streams per connection, idle timeout, keepalive (`IDLE_TIMEOUT` …, readCommonConfig); default when unset. */
  readonly connectionLimits?: ConnectionLimits | undefined;
  /** The plain-HTTP admin listener (`ADMIN_PORT`, readCommonConfig); unset → none. */
  readonly adminPort?: number | undefined;
  /** How often the database is probed for health (`READINESS_INTERVAL`, readCommonConfig); default when unset. */
  readonly readinessIntervalMs?: number | undefined;
}

/**
 * Reads the configuration from the environment: the common variables (`HOST`, `PORT` default
 * 7446, `DATA_DIR`, `DATABASE_URL`, `TRUST_DOMAIN`, `TLS_*`, `OIDC_*`, `LOG_LEVEL`) and
 * - `LICENSING_URL` (default https://localhost:7443),
 * - `AUDIT_URL` (optional; without it `fleet.sweep` events wait in the outbox),
 * - `SWEEP_INTERVAL` (default `60s`): the interval until licensing answers with its stored
 *   `sweep_interval` setting, which then drives the schedule (read every 30 s; the last value
 *   known is kept while licensing is down, so the scheduler keeps its rhythm). `off` turns
 *   scheduled runs off whatever the setting says (an operator's override; on demand only),
 * - `SWEEP_PAGE_SIZE` (default 1000, 1 to 50000: licensing's Reconcile limit),
 * - `SWEEP_PARALLELISM` (default 2, 1 to 16): ranges of the fleet reconciled side by side, each
 *   with one page in flight — on PostgreSQL each its own statement on its own connection.
 */
export async function readFleetSweepConfig(env: NodeJS.ProcessEnv = process.env): Promise<FleetSweepConfig> {
  const get = (name: string) => {
    const v = env[name]?.trim();
    return v === "" ? undefined : v;
  };
  const licensingUrl = parseUrl("LICENSING_URL", get("LICENSING_URL") ?? DEFAULT_LICENSING_URL);
  const auditRaw = get("AUDIT_URL");
  const auditUrl = auditRaw === undefined ? undefined : parseUrl("AUDIT_URL", auditRaw);
  const sweepIntervalMs = parseInterval(get("SWEEP_INTERVAL"));
  const pageSize = parsePageSize(get("SWEEP_PAGE_SIZE"));
  const parallelism = parseParallelism(get("SWEEP_PARALLELISM"));
  const common = await readCommonConfig(env, "fleet-sweep", { port: DEFAULT_FLEET_SWEEP_PORT });
  return {
    host: common.host,
    port: common.port,
    trustDomain: common.trustDomain,
    tls: common.tls,
    tlsReloadIntervalMs: common.tlsReloadIntervalMs,
    adminTokens: adminTokenVerifierFrom(common.adminTokens),
    database: { databaseUrl: common.databaseUrl, dataDir: common.dataDir },
    licensingUrl,
    auditUrl,
    sweepIntervalMs,
    pageSize,
    parallelism,
    logLevel: common.logLevel,
    deniedAuditWindowMs: common.deniedAuditWindowMs,
    connectionLimits: common.connectionLimits,
    adminPort: common.adminPort,
    readinessIntervalMs: common.readinessIntervalMs,
  };
}

function parseUrl(variable: string, value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(variable, `${JSON.stringify(value)} is not a URL`);
  }
  // Every service speaks TLS only; an http:// URL is a misconfiguration, not a choice.
  if (url.protocol !== "https:") throw new ConfigError(variable, "must be an https:// URL");
  return value.replace(/\/+$/, "");
}

function parseInterval(value: string | undefined): number | null {
  if (value === undefined) return DEFAULT_SWEEP_INTERVAL_MS;
  if (value === "off") return null;
  let ms: number;
  try {
    ms = parseDuration(value);
  } catch (err) {
    if (err instanceof DurationError) throw new ConfigError("SWEEP_INTERVAL", `${err.message}, or "off"`);
    throw err;
  }
  // The same range licensing's sweep_interval setting allows.
  if (ms < SWEEP_INTERVAL_RANGE_MS.min || ms > SWEEP_INTERVAL_RANGE_MS.max) throw new ConfigError("SWEEP_INTERVAL", "must be between 1s and 1d (or off)");
  return ms;
}

function parsePageSize(value: string | undefined): number {
  if (value === undefined) return DEFAULT_SWEEP_PAGE_SIZE;
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > SWEEP_PAGE_MAX) {
    throw new ConfigError("SWEEP_PAGE_SIZE", `${JSON.stringify(value)} must be an integer from 1 to ${SWEEP_PAGE_MAX}`);
  }
  return Number(value);
}

function parseParallelism(value: string | undefined): number {
  if (value === undefined) return DEFAULT_SWEEP_PARALLELISM;
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > SWEEP_PARALLELISM_MAX) {
    throw new ConfigError("SWEEP_PARALLELISM", `${JSON.stringify(value)} must be an integer from 1 to ${SWEEP_PARALLELISM_MAX}`);
  }
  return Number(value);
}
