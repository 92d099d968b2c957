import { create, fromJsonString, toJsonString, type JsonObject } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { BigIntType, defineEntity, p, type EntityManager, type EntityProperty, type InferEntity, type Platform } from "@mikro-orm/core";
import { ActorKind, AuditEventSchema, Outcome, type AuditEvent } from "@lcp/proto/audit/v1/audit_service_pb";
import { v7 as uuidv7 } from "uuid";
import { sanitizeAuditEvent } from "./audit-event-sanitize.js";
import { canonicalJson } from "./canonical-json.js";
import type { Database } from "./orm.js";
import { currentTraceparent, TRACEPARENT_LENGTH } from "./outbox-trace.js";

/**
 * A bigint sequence as both drivers want it: `bigserial` on PostgreSQL, `integer` on SQLite (whose
 * autoincrement key must be exactly `integer primary key`; declaring it `bigint` makes MikroORM
 * see a difference on every diff, so migrations would never be up to date).
 */
export class SequenceType extends BigIntType<"number"> {
  constructor() {
    super("number");
  }
  override getColumnType(prop: EntityProperty, platform: Platform): string {
    // Only SQLite lacks schemas among our drivers; a class-name test would break under minification.
    return (platform as unknown as { supportsSchemas(): boolean }).supportsSchemas() ? super.getColumnType(prop, platform) : "integer";
  }
}

/**
 * One audit event waiting in (or delivered from) an app's outbox table `outbox_event`.
 * `seq` is the delivery order; `id` is the event's UUIDv7 and the audit service's idempotency key.
 */
export const OutboxEvent = defineEntity({
  name: "OutboxEvent",
  tableName: "outbox_event",
  properties: {
    // number mode: 2^53 events is beyond any outbox's lifetime, and plain numbers compare cleanly.
    seq: p.type(SequenceType).primary().autoincrement(),
    id: p.string().length(36).unique(),
    action: p.string().length(128),
    occurredAt: p.datetime(),
    /** The audit.v1.AuditEvent in protobuf JSON form. Text, not a JSON column, so both drivers store it byte for byte. */
    payload: p.text(),
    deliveredAt: p.datetime().nullable(),
    attempts: p.integer().default(0),
    lastError: p.text().nullable(),
    /**
     * Set when the audit service refused the row's event as permanently invalid: the relay skips
     * it from then on (so it never blocks the events behind it) but keeps it, with the refusal in
     * `last_error`, for an operator to read (`ListQuarantinedEvents`). Never purged.
     */
    quarantinedAt: p.datetime().nullable(),
    /**
     * The W3C traceparent of the call that wrote the row, when it was traced: the relay's delivery
     * continues that trace (outbox-trace.ts). Null for untraced rows and rows written by SQL.
     */
    traceparent: p.string().length(TRACEPARENT_LENGTH).nullable(),
  },
  // The relay's hot query is "undelivered, in seq order"; purge scans delivered_at.
  indexes: [{ properties: ["deliveredAt", "seq"] }],
});

/** An outbox row as the ORM hydrates it. */
export type OutboxEventRow = InferEntity<typeof OutboxEvent>;

/**
 * The entities every producing app includes in its own `entities`, so its generated migrations
 * create the outbox table alongside its other tables (one migration chain per app).
 */
export const outboxEntities = [OutboxEvent];

type ActorKindName = "admin" | "service" | "appliance" | "system" | "anonymous";
type OutcomeName = "success" | "denied" | "failure";

const ACTOR_KINDS: Record<ActorKindName, ActorKind> = {
  admin: ActorKind.ADMIN,
  service: ActorKind.SERVICE,
  appliance: ActorKind.APPLIANCE,
  system: ActorKind.SYSTEM,
  anonymous: ActorKind.ANONYMOUS,
};
const OUTCOMES: Record<OutcomeName, Outcome> = {
  success: Outcome.SUCCESS,
  denied: Outcome.DENIED,
  failure: Outcome.FAILURE,
};

/** Input of {@link newAuditEvent}. Kinds and outcomes may be given as the enum or its lowercase name. */
export interface NewAuditEventInput {
  /** e.g. `license.issue`, `authz.denied` (docs/design.md §7). */
  action: string;
  actor: { kind: ActorKind | ActorKindName; id: string; roles?: readonly string[] };
  resource: { type: string; id: string };
  outcome: Outcome | OutcomeName;
  requestId?: string | undefined;
  /** Free-form, JSON-compatible details (reason, from/to state …). */
  details?: Record<string, unknown> | undefined;
  /** Defaults to the wall clock; pass the injected clock's time in services. */
  now?: Date | undefined;
}

/**
 * Builds an audit.v1.AuditEvent as a producer makes it: a fresh UUIDv7 `id` (the idempotency key
 * for `Append`) and `occurred_at = now`. `seq`, `producer` and the hashes are the audit service's.
 * Untrusted text (ids, roles, details) is sanitised to what `Append` accepts
 * ({@link sanitizeAuditEvent}), so no caller can make an event the audit service refuses.
 */
export function newAuditEvent(input: NewAuditEventInput): AuditEvent {
  const now = input.now ?? new Date();
  const event = create(AuditEventSchema, {
    id: uuidv7({ msecs: now.getTime() }),
    occurredAt: timestampFromDate(now),
    actor: {
      kind: typeof input.actor.kind === "string" ? ACTOR_KINDS[input.actor.kind] : input.actor.kind,
      id: input.actor.id,
      roles: [...(input.actor.roles ?? [])],
    },
    action: input.action,
    resource: { type: input.resource.type, id: input.resource.id },
    outcome: typeof input.outcome === "string" ? OUTCOMES[input.outcome] : input.outcome,
    requestId: input.requestId ?? "",
    // A JSON round trip turns Dates into strings and drops undefined, which Struct cannot hold.
    ...(input.details ? { details: JSON.parse(JSON.stringify(input.details)) as JsonObject } : {}),
  });
  return sanitizeAuditEvent(event);
}

/**
 * Adds `event` to the outbox in the caller's unit of work: it is written by the caller's flush
 * and commits or rolls back with the change it records (docs/design.md §7 "No change without its
 * record"). Does not flush. Call it with the EntityManager of the transaction making the change.
 */
export function recordAudit(em: EntityManager, event: AuditEvent): OutboxEventRow {
  if (!event.id || !event.occurredAt) {
    throw new Error("recordAudit: the event needs an id and occurred_at (build it with newAuditEvent)");
  }
  // Append refuses an event with both forms of details; caught here, it fails the producer's
  // change instead of stalling its outbox behind a batch that can never be delivered.
  if (event.details !== undefined && event.detailsJson !== "") {
    throw new Error("recordAudit: set details or detailsJson, not both");
  }
  // Every event reaches the outbox through here, also those not built by newAuditEvent: what is
  // stored is what Append accepts (idempotent for events newAuditEvent already sanitised).
  sanitizeAuditEvent(event);
  const occurredAt = new Date(Number(event.occurredAt.seconds) * 1000 + Math.floor(event.occurredAt.nanos / 1e6));
  const row = em.create(OutboxEvent, {
    id: event.id,
    action: event.action,
    occurredAt,
    payload: toJsonString(AuditEventSchema, event),
    deliveredAt: null,
    attempts: 0,
    lastError: null,
    quarantinedAt: null,
    traceparent: currentTraceparent(),
  });
  em.persist(row);
  return row;
}

/**
 * Writes `event` to the outbox in its own short transaction, for events with no surrounding change
 * (e.g. `authz.denied`). Resolves once the row is committed.
 */
export async function writeAuditNow(db: Database, event: AuditEvent): Promise<void> {
  await db.transactional(async (em) => {
    recordAudit(em, event);
  });
}

/**
 * How an outbox payload that holds a run of events begins (an event's protobuf JSON begins with
 * `{`). The whole payload: `lcp-event-run:<count>:` then the JSON of an {@link EventRun}.
 */
export const EVENT_RUN_PREFIX = "lcp-event-run:";

/**
 * A run of audit events that differ only in their id and their resource id, stored as ONE outbox
 * row (a bulk change such as a sweep page writes thousands of them in one transaction): event `i`
 * is the text `parts[0] ‖ id ‖ parts[1] ‖ resourceIds[i] ‖ parts[2]`, its id `idPrefix` followed by
 * `idStart + i` as 12 hex digits — a UUIDv7 whose last 48 bits count up (RFC 9562's monotonic
 * counter). The relay expands it when it ships ({@link outboxRowEvents}), so Append receives
 * exactly the events one row per event would have held, with the same ids, in the same order.
 */
export interface EventRun {
  /** The first 24 characters of the events' UUIDv7 ids (through the variant group and its dash). */
  idPrefix: string;
  /** The counter (last 48 bits) of the first event's id. */
  idStart: number;
  /** The event's protobuf JSON around its id and its resource id. */
  parts: [string, string, string];
  /** One event per resource id, in this order. */
  resourceIds: string[];
}

/**
 * The outbox payload of a run (what a producer's SQL writes; see the module's `EventRun`). The
 * count in the prefix lets `outboxStats` count events without parsing.
 */
export function encodeEventRun(run: EventRun): string {
  return `${EVENT_RUN_PREFIX}${run.resourceIds.length}:${JSON.stringify(run)}`;
}

/** A payload that is not a valid event run: thrown, never skipped (the row would be lost from the audit log). */
export class EventRunError extends Error {
  override name = "EventRunError";
}

const ID_PREFIX = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-$/;
const MAX_COUNTER = 2 ** 48;

/** Parses and checks a run payload (prefix, count, every field), or throws {@link EventRunError}. */
export function decodeEventRun(payload: string): EventRun {
  const fail = (why: string): never => {
    throw new EventRunError(`outbox: corrupt event run: ${why}`);
  };
  if (!payload.startsWith(EVENT_RUN_PREFIX)) fail("no run prefix");
  const colon = payload.indexOf(":", EVENT_RUN_PREFIX.length);
  const countText = colon < 0 ? "" : payload.slice(EVENT_RUN_PREFIX.length, colon);
  if (!/^[1-9][0-9]{0,8}$/.test(countText)) fail("no event count");
  let run: Partial<EventRun>;
  try {
    run = JSON.parse(payload.slice(colon + 1)) as Partial<EventRun>;
  } catch {
    return fail("the run is not JSON");
  }
  const { idPrefix, idStart, parts, resourceIds } = run;
  if (typeof idPrefix !== "string" || !ID_PREFIX.test(idPrefix)) fail("bad idPrefix");
  if (!Array.isArray(parts) || parts.length !== 3 || !parts.every((p) => typeof p === "string")) fail("parts must be three strings");
  if (!Array.isArray(resourceIds) || !resourceIds.every((id) => typeof id === "string" && id !== "")) fail("resourceIds must be non-empty strings");
  if (resourceIds!.length !== Number(countText)) fail(`the prefix counts ${countText} events, the run holds ${resourceIds!.length}`);
  if (!Number.isSafeInteger(idStart) || idStart! < 0 || idStart! + resourceIds!.length > MAX_COUNTER) fail("idStart out of range");
  return run as EventRun;
}

/**
 * One UUIDv7 of a run of them: the run's first 24 characters (time, version, random bits,
 * variant) followed by a 48-bit counter as 12 hex digits, RFC 9562's monotonic counter. An
 * {@link EventRun}'s event `i` has the counter `idStart + i`; a producer that writes a run (and
 * ids counted the same way, such as a sweep page's directives) names its rows with this too.
 */
export function runUuid(idPrefix: string, counter: number): string {
  return `${idPrefix}${counter.toString(16).padStart(12, "0")}`;
}

/** Event `i` of a run: its id and its protobuf JSON text. */
function runEvent(run: EventRun, i: number): { id: string; json: string } {
  const id = runUuid(run.idPrefix, run.idStart + i);
  return { id, json: run.parts[0] + id + run.parts[1] + run.resourceIds[i] + run.parts[2] };
}

/** Whether an outbox payload holds a run of events rather than one event. */
export function isEventRun(payload: string): boolean {
  return payload.startsWith(EVENT_RUN_PREFIX);
}

/**
 * The events an outbox row holds, in order: the one event, or every event of a run. A run whose
 * texts do not parse as events, or parse to an event whose id or resource id is not the one the
 * run placed there, is corrupt: {@link EventRunError}, so the relay records it and retries
 * instead of shipping a partial or wrong audit trail.
 */
export function outboxRowEvents(row: Pick<OutboxEventRow, "payload">): AuditEvent[] {
  if (!isEventRun(row.payload)) return [fromJsonString(AuditEventSchema, row.payload)];
  const run = decodeEventRun(row.payload);
  return run.resourceIds.map((resourceId, i) => {
    const { id, json } = runEvent(run, i);
    let event: AuditEvent;
    try {
      event = fromJsonString(AuditEventSchema, json);
    } catch (err) {
      throw new EventRunError(`outbox: corrupt event run: event ${i} is not an audit event (${err instanceof Error ? err.message : String(err)})`);
    }
    if (event.id !== id || event.resource?.id !== resourceId) {
      throw new EventRunError(`outbox: corrupt event run: event ${i} does not carry its id and resource id where the run puts them`);
    }
    return event;
  });
}

/** The protobuf JSON texts of a run's events, exactly as one row per event would have stored them (for tests and tools). */
export function eventRunTexts(run: EventRun): string[] {
  return run.resourceIds.map((_, i) => runEvent(run, i).json);
}

/** Parses an outbox row's payload back into the AuditEvent it was made from (a one-event row; a run: {@link outboxRowEvents}). */
export function outboxPayload(row: Pick<OutboxEventRow, "payload">): AuditEvent {
  if (isEventRun(row.payload)) throw new EventRunError("outboxPayload: the row holds a run of events; read it with outboxRowEvents");
  return fromJsonString(AuditEventSchema, row.payload);
}

/**
 * The event as the relay sends it to `Append`: details as `details_json`, the canonical JSON
 * text of the Struct the producer recorded. A string is far cheaper for the audit service to
 * decode and check than a Struct (a map of Value messages), and canonical JSON is what the
 * service would have made of the Struct, so both forms of the same details hash the same.
 */
export function outboxDeliveryEvent(row: Pick<OutboxEventRow, "payload">): AuditEvent {
  return forDelivery(outboxPayload(row));
}

/** Every event of an outbox row as the relay sends it ({@link outboxDeliveryEvent}; a run expanded in order). */
export function outboxDeliveryEvents(row: Pick<OutboxEventRow, "payload">): AuditEvent[] {
  return outboxRowEvents(row).map(forDelivery);
}

function forDelivery(event: AuditEvent): AuditEvent {
  if (event.details !== undefined) {
    event.detailsJson = canonicalJson(event.details);
    event.details = undefined;
  }
  return event;
}
