import { AUDIT_EVENT_LIMITS, boundAuditDetails, sanitizeAuditRoles, sanitizeAuditText } from "@lcp/domain";
import { auditActorOf, repeatedDetails, type DeniedEvent } from "@lcp/rpc";
import { v7 as uuidv7 } from "uuid";
import { canonicalJson } from "./chain/canonical.js";
import type { NormalizedEvent } from "./validate.js";

/** The audit action of every refused call (docs/design.md §7, `@lcp/domain` AUDIT_ACTIONS). */
export const AUTHZ_DENIED = "authz.denied";


/**
 * The `authz.denied` event for a call this service refused: who (actor), which RPC (resource
 * `rpc`/procedure), why (details.reason, details.code), with the call's request id — or, for the
 * repeats of a refusal within a window, how many there were (details.repeated). The audit
 * service appends it to its own chain directly, since it has no outbox to go through.
 */
export function deniedEvent(event: DeniedEvent, now: Date): NormalizedEvent {
  const actor = auditActorOf(event.principal);
  // The caller chose the token's subject and roles: bounded and escaped like every producer's
  // event (@lcp/domain audit-event-limits), since this one skips Append's validation.
  const details = { reason: event.reason, code: event.code, rpc: event.procedure, ...repeatedDetails(event) };
  return {
    id: uuidv7({ msecs: now.getTime() }),
    occurredAt: new Date(now.getTime()),
    actorKind: actor.kind,
    actorId: sanitizeAuditText(actor.id, AUDIT_EVENT_LIMITS.idText),
    actorRoles: sanitizeAuditRoles(actor.roles),
    action: AUTHZ_DENIED,
    resourceType: "rpc",
    resourceId: sanitizeAuditText(event.procedure, AUDIT_EVENT_LIMITS.idText),
    outcome: "denied",
    requestId: sanitizeAuditText(event.requestId, AUDIT_EVENT_LIMITS.requestId),
    details: canonicalJson(boundAuditDetails(JSON.parse(JSON.stringify(details)) as Record<string, unknown>)),
  };
}
