/**
 * Who did it, for the audit trail: the RPC principal as an audit actor, and the context every
 * audited change carries (actor + request id) from the handler down to the transaction.
 */
import { newAuditEvent, recordAudit, type NewAuditEventInput } from "@lcp/persistence";
import type { AuditAction } from "@lcp/domain";
import { auditActorOf, type Principal } from "@lcp/rpc";
import type { EntityManager } from "@mikro-orm/core";

/** An audit event's actor. */
export type AuditActor = NewAuditEventInput["actor"];

/** The service itself, for changes nobody asked for (the first keys and CA at first start). */
export const SYSTEM_ACTOR: AuditActor = { kind: "system", id: "signing-keys" };

/** What an audited change needs to know about the call that caused it. */
export interface AuditContext {
  actor: AuditActor;
  requestId?: string | undefined;
  /** The caller's stated reason, recorded in the event's details. */
  reason?: string | undefined;
}

/** The audit actor for an RPC principal. */
export function actorOf(principal: Principal): AuditActor {
  return auditActorOf(principal);
}

/**
 * Writes one audit event into the outbox in the caller's transaction, so it commits or rolls
 * back with the change it records (docs/design.md §7).
 */
export function audit(
  em: EntityManager,
  ctx: AuditContext,
  action: AuditAction,
  resource: { type: string; id: string },
  now: Date,
  details: Record<string, unknown> = {},
): void {
  recordAudit(
    em,
    newAuditEvent({
      action,
      actor: ctx.actor,
      resource,
      outcome: "success",
      requestId: ctx.requestId,
      details: ctx.reason ? { reason: ctx.reason, ...details } : details,
      now,
    }),
  );
}
