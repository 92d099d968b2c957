/**
 * Delivers this app's audit outbox to the audit service's Append, with this app's service
 * identity (its certificate, mTLS). Append is idempotent by event id, so redelivery after a
 * crash or a timeout is harmless.
 */
import { AuditService } from "@lcp/proto/audit/v1/audit_service_pb";
import { createOutboxRelay, type Database, type OutboxRelay } from "@lcp/persistence";
import { createClient, isPermanentAuditRefusal, type ServerTls } from "@lcp/rpc";
import type { Logger } from "pino";

/** Options of {@link startAuditRelay}. */
export interface AuditRelayOptions {
  db: Database;
  auditUrl: string;
  /** This app's certificate and key (its service identity) and the platform CA. */
  tls: ServerTls;
  logger: Logger;
}

/** Starts the outbox relay; `stop()` it on shutdown. */
export function startAuditRelay(options: AuditRelayOptions): OutboxRelay {
  const audit = createClient(AuditService, {
    baseUrl: options.auditUrl,
    tls: { caPem: options.tls.caPem, certPem: options.tls.certPem, keyPem: options.tls.keyPem },
  });
  const relay = createOutboxRelay({
    db: options.db,
    deliver: async (events) => {
      await audit.append({ events });
    },
    isPermanentRefusal: isPermanentAuditRefusal,
    logger: options.logger,
  });
  relay.start();
  return relay;
}
