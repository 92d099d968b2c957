import { createOrm, isConnectionError, type Database } from "@lcp/persistence";
import { AuditService } from "@lcp/proto/audit/v1/audit_service_pb";
import { adminTokenVerifierFrom, createLogger, createServer, type DeniedEvent } from "@lcp/rpc";
import { appendWithRetry, createAuditService } from "./audit-service.js";
import type { AuditConfig } from "./config.js";
import { deniedEvent } from "./denials.js";
import { auditEntities } from "./storage/entities.js";
import { migrations as auditMigrations } from "./storage/schema.js";
import { createAuditStore } from "./storage/audit-store.js";

/** A running audit app. */
export interface AuditApp {
  /** `https://localhost:<port>`. */
  readonly url: string;
  readonly port: number;
  /** The app's database (tests read and tamper through it). */
  readonly db: Database;
  /** Stops the listener (draining calls), then closes the database. Idempotent. */
  close(): Promise<void>;
}

/**
 * Starts the audit service: opens (and migrates) its database, then serves `audit.v1.AuditService`
 * over mTLS with health and reflection. Several instances may share one PostgreSQL schema; they
 * keep one gapless chain by locking the chain head on every append.
 */
export async function startAudit(config: AuditConfig): Promise<AuditApp> {
  const logger = config.logger ?? createLogger("audit", config.logLevel);
  const now = config.now ?? (() => new Date());
  const db = await createOrm({
    app: "audit",
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    schema: config.databaseSchema,
    entities: auditEntities,
    migrations: auditMigrations,
    logger,
  });
  const store = createAuditStore(db);

  // The audit service audits itself: its own refusals go straight onto its chain, before the
  // caller gets the error. A failure is logged by the interceptor, never changes the answer.
  const onDenied = async (event: DeniedEvent) => {
    const at = now();
    await appendWithRetry(store, "audit", [deniedEvent(event, at)], at);
  };

  let server;
  try {
    server = await createServer({
      transientError: isConnectionError,
      name: "audit",
      host: config.host,
      port: config.port,
      tls: config.tls,
      trustDomain: config.trustDomain,
      adminTokens: adminTokenVerifierFrom(config.adminTokens),
      onDenied,
      deniedAuditWindowMs: config.deniedAuditWindowMs,
      connectionLimits: config.connectionLimits,
      logger,
      ...(config.shutdownGraceMs !== undefined ? { shutdownGraceMs: config.shutdownGraceMs } : {}),
      // A full batch of 1,000 events with 16 KiB details each is ~16 MiB; leave headroom.
      maxReceiveMessageBytes: 20 * 1024 * 1024,
      register: (router) => router.service(AuditService, createAuditService({ store, now, maxClockSkewMs: config.maxClockSkewMs })),
    });
  } catch (err) {
    await store.close();
    await db.close();
    throw err;
  }
  const listening = server;

  let closed: Promise<void> | undefined;
  return {
    url: listening.url,
    port: listening.port,
    db,
    close() {
      closed ??= (async () => {
        try {
          await listening.close();
        } finally {
          await store.close();
          await db.close();
        }
      })();
      return closed;
    },
  };
}
