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
  return {
    id: uuidv7({ msecs: now.getTime() }),
    occurredAt: new Date(now.getTime()),
    actorKind: actor.kind,
    actorId: actor.id,
    actorRoles: [...actor.roles],
    action: AUTHZ_DENIED,
    resourceType: "rpc",
    resourceId: event.procedure,
    outcome: "denied",
    // Accepted by the interceptor only when short and plain, so it fits the column.
    requestId: event.requestId.slice(0, 128),
    details: canonicalJson({ reason: event.reason, code: event.code, rpc: event.procedure, ...repeatedDetails(event) }),
  };
}
