/**
 * How a principal and a refused call appear in the audit trail. Every service records its
 * `authz.denied` events from these, so the trail names callers the same way whichever service
 * refused them. Plain data: libs/rpc still knows nothing of the outbox that stores them.
 */
import type { DeniedEvent } from "./interceptors.js";
import { principalId, type Principal } from "./principal.js";

/** The audit actor of a principal: its kind, its id (subject, service, deployment, or "-"), its roles. */
export interface AuditActorFields {
  readonly kind: "admin" | "service" | "appliance" | "anonymous";
  readonly id: string;
  readonly roles: readonly string[];
}

/** The audit actor for a principal. */
export function auditActorOf(principal: Principal): AuditActorFields {
  return { kind: principal.kind, id: principalId(principal), roles: principal.kind === "admin" ? principal.roles : [] };
}

/** The fields of the `authz.denied` event for a refused call: who, which RPC, why. */
export function deniedAuditFields(event: DeniedEvent) {
  return {
    action: "authz.denied",
    actor: auditActorOf(event.principal),
    resource: { type: "rpc", id: event.procedure },
    outcome: "denied",
    requestId: event.requestId,
    details: { code: event.code, reason: event.reason, ...repeatedDetails(event) },
  } as const;
}

/** A summary's count and span, for an event's details (nothing for a single refusal). */
export function repeatedDetails(event: Pick<DeniedEvent, "repeated">): { repeated?: { count: number; from: string; to: string; mixed?: true } } {
  const r = event.repeated;
  if (!r) return {};
  return { repeated: { count: r.count, from: r.firstAt.toISOString(), to: r.lastAt.toISOString(), ...(r.mixed ? { mixed: true as const } : {}) } };
}
