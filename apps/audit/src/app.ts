/**
 * `startAudit(config)`: the audit service assembled from its parts — database, chain store, RPC
 * server — used by main.ts and by the tests. It has no outbox: its own refusals go straight onto
 * its chain.
 */
import type { Database } from "@lcp/persistence";
import { AuditService } from "@lcp/proto/audit/v1/audit_service_pb";
import type { DeniedEvent } from "@lcp/rpc";
import { startService, type RunningService } from "@lcp/service";
import { appendWithRetry, createAuditService } from "./audit-service.js";
import type { AuditConfig } from "./config.js";
import { deniedEvent } from "./denials.js";
import { auditEntities } from "./storage/entities.js";
import { migrations as auditMigrations } from "./storage/schema.js";
import { createAuditStore } from "./storage/audit-store.js";

/** A running audit app; `close()` stops the listener (draining calls), then the store and the database. */
export interface AuditApp extends RunningService {
  /** The app's database (tests read and tamper through it). */
  readonly db: Database;
}

/**
 * Starts the audit service: opens (and migrates) its database, then serves `audit.v1.AuditService`
 * over mTLS with health and reflection. Several instances may share one PostgreSQL schema; they
 * keep one gapless chain by locking the chain head on every append.
 */
export async function startAudit(config: AuditConfig): Promise<AuditApp> {
  const database = { databaseUrl: config.databaseUrl, dataDir: config.dataDir, schema: config.databaseSchema, entities: auditEntities, migrations: auditMigrations };
  return startService({ name: "audit", config, database, outbox: false }, async ({ db, now, defer, listen, ready }) => {
    const store = createAuditStore(db);
    defer(() => store.close());

    // The audit service audits itself: its own refusals go straight onto its chain, before the
    // caller gets the error. A failure is logged by the interceptor, never changes the answer.
    const onDenied = async (event: DeniedEvent) => {
      const at = now();
      await appendWithRetry(store, "audit", [deniedEvent(event, at)], at);
    };

    const server = await listen({
      onDenied,
      // A full batch of 1,000 events with 16 KiB details each is ~16 MiB; leave headroom.
      maxReceiveMessageBytes: 20 * 1024 * 1024,
      register: (router) => router.service(AuditService, createAuditService({ store, now, maxClockSkewMs: config.maxClockSkewMs })),
    });
    return { ...ready(server), db };
  });
}
