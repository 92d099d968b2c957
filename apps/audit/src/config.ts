import type { AdminTokenVerifierLike, ServerTls } from "@lcp/rpc";
import type { Logger } from "pino";

/** The audit app's default port (DESIGN.md §12). */
export const DEFAULT_AUDIT_PORT = 7445;
/** How far a producer's clock may run ahead (DESIGN.md §5 max_clock_skew default). */
export const DEFAULT_MAX_CLOCK_SKEW_MS = 5 * 60_000;

/** Everything `startAudit` needs, parsed and validated. */
export interface AuditConfig {
  /** Interface to bind; default 127.0.0.1. */
  readonly host?: string | undefined;
  /** 0 picks a free port (tests). */
  readonly port: number;
  readonly trustDomain: string;
  readonly tls: ServerTls;
  /** Verifier of admin bearer tokens (ListEvents, VerifyChain); none → admins are refused. */
  readonly adminTokens?: AdminTokenVerifierLike | undefined;
  /** Where the log lives: spread into `createOrm` (SQLite under dataDir unless databaseUrl). */
  readonly database: {
    readonly databaseUrl?: string | undefined;
    readonly dataDir: string;
    /** PostgreSQL schema; default `audit`. */
    readonly schema?: string | undefined;
  };
  /** How far `occurred_at` may lie in the future (MAX_CLOCK_SKEW). */
  readonly maxClockSkewMs: number;
  /** Clock (tests); default the wall clock. */
  readonly now?: (() => Date) | undefined;
  readonly logger?: Logger | undefined;
  readonly shutdownGraceMs?: number | undefined;
}
