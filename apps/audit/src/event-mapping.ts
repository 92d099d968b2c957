import { create, type JsonObject } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { ActorKind, AuditEventSchema, Outcome, type AuditEvent } from "@lcp/proto/audit/v1/audit_service_pb";
import type { StoredEvent } from "./storage/audit-store.js";
import { ACTOR_KIND_BY_NAME, OUTCOME_BY_NAME } from "./validate.js";

/** A stored event as the API answers it: every field, hashes as raw bytes, details in both forms. */
export function toProtoEvent(e: StoredEvent): AuditEvent {
  return create(AuditEventSchema, {
    id: e.id,
    seq: BigInt(e.seq),
    occurredAt: timestampFromMs(e.occurredAt.getTime()),
    actor: { kind: ACTOR_KIND_BY_NAME.get(e.actorKind) ?? ActorKind.UNSPECIFIED, id: e.actorId, roles: [...e.actorRoles] },
    action: e.action,
    resource: { type: e.resourceType, id: e.resourceId },
    outcome: OUTCOME_BY_NAME.get(e.outcome) ?? Outcome.UNSPECIFIED,
    requestId: e.requestId,
    details: parseDetails(e.details),
    // The exact bytes the hash covers, so a reader can recompute it (README "Hash chain").
    detailsJson: e.details,
    producer: e.producer,
    prevHash: Buffer.from(e.prevHash, "hex"),
    hash: Buffer.from(e.hash, "hex"),
    recordedAt: timestampFromMs(e.recordedAt.getTime()),
  });
}

function parseDetails(text: string): JsonObject {
  try {
    const parsed: unknown = JSON.parse(text);
    return parsed !== null && typeof parsed === "object" && !Array.isArray(parsed) ? (parsed as JsonObject) : {};
  } catch {
    // Only a hand-edited row gets here; VerifyChain names it, listing must still work.
    return {};
  }
}
