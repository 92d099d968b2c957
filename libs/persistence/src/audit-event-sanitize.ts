/**
 * The producers' side of the audit event limits (@lcp/domain `audit-event-limits`): every event
 * an app puts in its outbox passes through {@link sanitizeAuditEvent}, so nothing a caller sends
 * (a licence id holding NUL, a 20,000-character reason, a token with a hundred roles) can make
 * the audit service refuse the event and stall the outbox behind it.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { ActorKind, Outcome, type AuditEvent } from "@lcp/proto/audit/v1/audit_service_pb";
import { AUDIT_EVENT_LIMITS, boundAuditDetails, isValidAuditActionName, sanitizeAuditRoles, sanitizeAuditText, utf8ByteLength } from "@lcp/domain";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** An event that no sanitising can make acceptable: a producer bug (its action, kind, outcome or id), thrown before anything is written. */
export class InvalidAuditEventError extends Error {
  override name = "InvalidAuditEventError";
}

/**
 * `event` with every untrusted part brought inside what `Append` accepts (mutated in place and
 * returned): text fields escaped and cut with a visible marker, roles capped, details bounded.
 * Idempotent. What only the producer's own code sets — the action, actor kind, outcome and id —
 * is checked, and a wrong one throws {@link InvalidAuditEventError}: better the change fails
 * than its record waits for ever.
 */
export function sanitizeAuditEvent(event: AuditEvent): AuditEvent {
  if (!UUID.test(event.id)) throw new InvalidAuditEventError(`audit event id "${event.id.slice(0, 64)}" is not a UUID`);
  if (!isValidAuditActionName(event.action)) throw new InvalidAuditEventError(`audit action "${event.action.slice(0, 64)}" is not a dotted lowercase name`);
  if (!event.actor || event.actor.kind === ActorKind.UNSPECIFIED || !(event.actor.kind in ActorKind)) {
    throw new InvalidAuditEventError(`audit event ${event.action} has no known actor kind`);
  }
  if (event.outcome === Outcome.UNSPECIFIED || !(event.outcome in Outcome)) throw new InvalidAuditEventError(`audit event ${event.action} has no known outcome`);
  event.actor.id = sanitizeAuditText(event.actor.id, AUDIT_EVENT_LIMITS.idText);
  event.actor.roles = sanitizeAuditRoles(event.actor.roles);
  if (event.resource) {
    event.resource.type = sanitizeAuditText(event.resource.type, AUDIT_EVENT_LIMITS.resourceType);
    event.resource.id = sanitizeAuditText(event.resource.id, AUDIT_EVENT_LIMITS.idText);
  }
  event.requestId = sanitizeAuditText(event.requestId, AUDIT_EVENT_LIMITS.requestId);
  if (event.details !== undefined) event.details = boundAuditDetails(event.details) as JsonObject;
  if (event.detailsJson !== "") event.detailsJson = boundDetailsJson(event.detailsJson);
  return event;
}

/** A `details_json` text that `Append` accepts: kept as is when it already does (its bytes are what the chain hashes). */
function boundDetailsJson(text: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return JSON.stringify({ invalid: true, bytes: utf8ByteLength(text) });
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return JSON.stringify({ invalid: true, bytes: utf8ByteLength(text) });
  if (utf8ByteLength(text) <= AUDIT_EVENT_LIMITS.detailsBytes) return text;
  return JSON.stringify(boundAuditDetails(parsed as Record<string, unknown>));
}
