import { ActorKind, Outcome, type AuditEvent } from "@lcp/proto/audit/v1/audit_service_pb";
import { AUDIT_EVENT_LIMITS, hasRefusedAuditChar, isValidAuditActionName } from "@lcp/domain";
import { canonicalJson, type ActorKindName, type OutcomeName } from "./chain/canonical.js";

/** At most this many events per `Append` (audit_service.proto). */
export const MAX_BATCH_EVENTS = AUDIT_EVENT_LIMITS.batchEvents;
/** Details larger than this once canonically encoded are refused (audit_service.proto: 16 KiB). */
export const MAX_DETAILS_BYTES = AUDIT_EVENT_LIMITS.detailsBytes;

// Bounds on the free-text fields, so one producer bug cannot bloat every row and index. They
// live in @lcp/domain because producers sanitise their events to the same numbers.
const MAX_ACTION = AUDIT_EVENT_LIMITS.action;
const MAX_ID_TEXT = AUDIT_EVENT_LIMITS.idText;
const MAX_RESOURCE_TYPE = AUDIT_EVENT_LIMITS.resourceType;
const MAX_REQUEST_ID = AUDIT_EVENT_LIMITS.requestId;
const MAX_ROLES = AUDIT_EVENT_LIMITS.roles;
const MAX_ROLE = AUDIT_EVENT_LIMITS.role;

// Any RFC 9562 UUID (v7 is what producers make, but the id is only an idempotency key here).
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

// The range of google.protobuf.Timestamp (0001-01-01 … 9999-12-31).
const MIN_TIMESTAMP_SECONDS = -62_135_596_800n;
const MAX_TIMESTAMP_SECONDS = 253_402_300_799n;

/** Proto enum → stored name. UNSPECIFIED and unknown numbers are absent on purpose. */
export const ACTOR_KIND_NAMES: ReadonlyMap<ActorKind, ActorKindName> = new Map([
  [ActorKind.ADMIN, "admin"],
  [ActorKind.SERVICE, "service"],
  [ActorKind.APPLIANCE, "appliance"],
  [ActorKind.SYSTEM, "system"],
  [ActorKind.ANONYMOUS, "anonymous"],
]);

/** Proto enum → stored name. UNSPECIFIED and unknown numbers are absent on purpose. */
export const OUTCOME_NAMES: ReadonlyMap<Outcome, OutcomeName> = new Map([
  [Outcome.SUCCESS, "success"],
  [Outcome.DENIED, "denied"],
  [Outcome.FAILURE, "failure"],
]);

/** Stored name → proto enum, for answers. */
export const ACTOR_KIND_BY_NAME: ReadonlyMap<string, ActorKind> = new Map([...ACTOR_KIND_NAMES].map(([k, v]) => [v, k]));
/** Stored name → proto enum, for answers. */
export const OUTCOME_BY_NAME: ReadonlyMap<string, Outcome> = new Map([...OUTCOME_NAMES].map(([k, v]) => [v, k]));

/** An incoming event after validation: what will be stored, less seq, producer and the hashes. */
export interface NormalizedEvent {
  readonly id: string;
  /** Truncated to milliseconds: the precision every driver stores and the canonical encoding uses. */
  readonly occurredAt: Date;
  readonly actorKind: ActorKindName;
  readonly actorId: string;
  readonly actorRoles: readonly string[];
  readonly action: string;
  readonly resourceType: string;
  readonly resourceId: string;
  readonly outcome: OutcomeName;
  readonly requestId: string;
  /** The details text that is stored and hashed: `details_json` verbatim, or the canonical JSON of a Struct; `{}` when absent. */
  readonly details: string;
}

/** A refused batch: the first offending event's index and what is wrong with it. */
export interface BatchRefusal {
  readonly ok: false;
  readonly code: "INVALID_ARGUMENT";
  readonly message: string;
  /** Index of the offending event in the request, or undefined for the batch as a whole. */
  readonly index?: number;
  /** The offending field (proto name). */
  readonly field?: string;
}

/**
 * Validates a whole `Append` batch before anything is stored: either every event is well formed
 * and the batch is returned normalised, or the first offending event is named and nothing may
 * be stored (a relay must fix or drop the batch; half a batch would break per-producer order).
 * `now` and `maxClockSkewMs` bound `occurred_at`: a producer's clock may run ahead by the skew,
 * no more.
 */
export function validateAppendBatch(
  events: readonly AuditEvent[],
  now: Date,
  maxClockSkewMs: number,
): { ok: true; events: NormalizedEvent[] } | BatchRefusal {
  if (events.length > MAX_BATCH_EVENTS) {
    return { ok: false, code: "INVALID_ARGUMENT", message: `a batch holds at most ${MAX_BATCH_EVENTS} events (got ${events.length})` };
  }
  const latest = now.getTime() + maxClockSkewMs;
  const out: NormalizedEvent[] = [];
  for (let index = 0; index < events.length; index++) {
    const v = validateEvent(events[index]!, latest);
    if (typeof v === "string" || Array.isArray(v)) {
      const [field, problem] = Array.isArray(v) ? v : ["", v];
      return { ok: false, code: "INVALID_ARGUMENT", message: `events[${index}]: ${problem}`, index, ...(field ? { field } : {}) };
    }
    out.push(v);
  }
  return { ok: true, events: out };
}

/** One event: the normalised event, or [field, problem]. */
function validateEvent(e: AuditEvent, latestMs: number): NormalizedEvent | [string, string] {
  if (!e.id) return ["id", "id is required"];
  if (!UUID.test(e.id)) return ["id", `id "${truncate(e.id)}" is not a UUID`];
  if (!e.action) return ["action", "action is required"];
  if (!isValidAuditActionName(e.action)) {
    return ["action", `action "${truncate(e.action)}" is not a dotted lowercase name (e.g. license.revoke) of at most ${MAX_ACTION} characters`];
  }
  if (!e.occurredAt) return ["occurred_at", "occurred_at is required"];
  const { seconds, nanos } = e.occurredAt;
  if (seconds < MIN_TIMESTAMP_SECONDS || seconds > MAX_TIMESTAMP_SECONDS || nanos < 0 || nanos > 999_999_999) {
    return ["occurred_at", "occurred_at is not a valid timestamp"];
  }
  const occurredMs = Number(seconds) * 1000 + Math.floor(nanos / 1_000_000);
  if (occurredMs > latestMs) {
    return ["occurred_at", `occurred_at ${new Date(occurredMs).toISOString()} is in the future beyond the allowed clock skew`];
  }
  if (!e.actor) return ["actor", "actor is required"];
  // PostgreSQL text cannot hold NUL; refusing it here keeps both drivers storing the same bytes.
  const texts = [e.actor.id, ...e.actor.roles, e.resource?.type ?? "", e.resource?.id ?? "", e.requestId];
  if (texts.some(hasRefusedAuditChar)) return ["", "text fields must not contain NUL characters"];
  const actorKind = ACTOR_KIND_NAMES.get(e.actor.kind);
  if (!actorKind) return ["actor.kind", `actor.kind ${e.actor.kind} is not a known actor kind`];
  if (e.actor.id.length > MAX_ID_TEXT) return ["actor.id", `actor.id is longer than ${MAX_ID_TEXT} characters`];
  if (e.actor.roles.length > MAX_ROLES || e.actor.roles.some((r) => r.length > MAX_ROLE)) {
    return ["actor.roles", `actor.roles holds at most ${MAX_ROLES} roles of at most ${MAX_ROLE} characters`];
  }
  const outcome = OUTCOME_NAMES.get(e.outcome);
  if (!outcome) return ["outcome", `outcome ${e.outcome} is not a known outcome`];
  const resourceType = e.resource?.type ?? "";
  const resourceId = e.resource?.id ?? "";
  if (resourceType.length > MAX_RESOURCE_TYPE) return ["resource.type", `resource.type is longer than ${MAX_RESOURCE_TYPE} characters`];
  if (resourceId.length > MAX_ID_TEXT) return ["resource.id", `resource.id is longer than ${MAX_ID_TEXT} characters`];
  if (e.requestId.length > MAX_REQUEST_ID) return ["request_id", `request_id is longer than ${MAX_REQUEST_ID} characters`];
  const details = detailsText(e);
  if (typeof details !== "string") return details;
  return {
    // Lowercase, so the idempotency key does not depend on how a producer spells hex digits.
    id: e.id.toLowerCase(),
    occurredAt: new Date(occurredMs),
    actorKind,
    actorId: e.actor.id,
    actorRoles: [...e.actor.roles],
    action: e.action,
    resourceType,
    resourceId,
    outcome,
    requestId: e.requestId,
    details,
  };
}

/**
 * The details text to store and hash, or [field, problem]. `details_json` (what outbox relays
 * send) is kept verbatim once it is known to be one JSON object within the size limit: parsing
 * proves that, and re-encoding it would only cost time and change nothing the chain needs —
 * the hash covers the stored text whatever its key order. A Struct is encoded canonically.
 */
function detailsText(e: AuditEvent): string | [string, string] {
  const json = e.detailsJson;
  if (json !== "") {
    if (e.details !== undefined) return ["details_json", "set details or details_json, not both"];
    // UTF-8 takes at most three bytes per UTF-16 code unit: short texts need no byte count.
    if (json.length * 3 > MAX_DETAILS_BYTES) {
      const bytes = Buffer.byteLength(json, "utf8");
      if (bytes > MAX_DETAILS_BYTES) return ["details_json", `details_json is ${bytes} bytes; at most ${MAX_DETAILS_BYTES} are allowed`];
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(json);
    } catch {
      return ["details_json", "details_json is not valid JSON"];
    }
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return ["details_json", "details_json must be a JSON object"];
    return json;
  }
  if (e.details === undefined) return "{}";
  const text = canonicalJson(e.details);
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes > MAX_DETAILS_BYTES) return ["details", `details are ${bytes} bytes once encoded; at most ${MAX_DETAILS_BYTES} are allowed`];
  return text;
}

function truncate(s: string): string {
  return s.length > 64 ? `${s.slice(0, 61)}...` : s;
}
