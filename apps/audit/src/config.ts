/**
 * The audit configuration: the settings every app shares (`readCommonConfig`: HOST, PORT,
 * DATA_DIR, DATABASE_URL, TRUST_DOMAIN, TLS_*, OIDC_*, LOG_LEVEL) plus this app's own, parsed once
 * at start. A bad value fails fast with a ConfigError naming the variable.
 *
 * - `MAX_CLOCK_SKEW`: how far a producer's `occurred_at` may lie ahead of this service's clock
 *   before Append refuses the batch; a duration (`90s`, `5m`), default `5m`, at most `1d`.
 */
import { MAX_CLOCK_SKEW_RANGE_MS } from "@lcp/domain";
import { ConfigError, readCommonConfig, type CommonConfig } from "@lcp/rpc";
import { parseDuration } from "@lcp/tokens";
import type { Logger } from "pino";

/** The audit app's default port (docs/design.md §12). */
export const DEFAULT_AUDIT_PORT = 7445;
/** How far a producer's clock may run ahead (docs/design.md §5 max_clock_skew default). */
export const DEFAULT_MAX_CLOCK_SKEW_MS = 5 * 60_000;

/** Everything `startAudit` needs, parsed and validated. */
export interface AuditConfig extends CommonConfig {
  /** How far `occurred_at` may lie in the future (MAX_CLOCK_SKEW). */
  readonly maxClockSkewMs: number;
  /** PostgreSQL schema for the log (default `audit`); tests isolate with it. Replicas share it. */
  readonly databaseSchema?: string | undefined;
  /** Test seams: the clock (default the wall clock), a logger, the shutdown grace period. */
  readonly now?: (() => Date) | undefined;
  readonly logger?: Logger | undefined;
  readonly shutdownGraceMs?: number | undefined;
}

/** Reads and validates the audit configuration from the environment. */
export async function readAuditConfig(env: NodeJS.ProcessEnv): Promise<AuditConfig> {
  // App settings first: they need no I/O, so a typo fails before any dev PKI is generated.
  const skewText = env.MAX_CLOCK_SKEW?.trim();
  let maxClockSkewMs = DEFAULT_MAX_CLOCK_SKEW_MS;
  if (skewText) {
    try {
      maxClockSkewMs = parseDuration(skewText);
    } catch (err) {
      throw new ConfigError("MAX_CLOCK_SKEW", (err as Error).message);
    }
    if (maxClockSkewMs > MAX_CLOCK_SKEW_RANGE_MS.max) throw new ConfigError("MAX_CLOCK_SKEW", "must be at most 1d");
  }
  const common = await readCommonConfig(env, "audit", { port: DEFAULT_AUDIT_PORT });
  return { ...common, maxClockSkewMs };
}
