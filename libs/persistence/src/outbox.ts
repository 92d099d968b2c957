import { create, fromJsonString, toJsonString, type JsonObject } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { BigIntType, defineEntity, p, type EntityManager, type EntityProperty, type InferEntity, type Platform } from "@mikro-orm/core";
import { ActorKind, AuditEventSchema, Outcome, type AuditEvent } from "@lcp/proto/audit/v1/audit_service_pb";
import { v7 as uuidv7 } from "uuid";
import { canonicalJson } from "./canonical-json.js";
import type { Database } from "./orm.js";

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
  /** e.g. `license.issue`, `authz.denied` (DESIGN.md §7). */
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
 */
export function newAuditEvent(input: NewAuditEventInput): AuditEvent {
  const now = input.now ?? new Date();
  return create(AuditEventSchema, {
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
}

/**
 * Adds `event` to the outbox in the caller's unit of work: it is written by the caller's flush
 * and commits or rolls back with the change it records (DESIGN.md §7 "No change without its
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
  const occurredAt = new Date(Number(event.occurredAt.seconds) * 1000 + Math.floor(event.occurredAt.nanos / 1e6));
  const row = em.create(OutboxEvent, {
    id: event.id,
    action: event.action,
    occurredAt,
    payload: toJsonString(AuditEventSchema, event),
    deliveredAt: null,
    attempts: 0,
    lastError: null,
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

/** Parses an outbox row's payload back into the AuditEvent it was made from. */
export function outboxPayload(row: Pick<OutboxEventRow, "payload">): AuditEvent {
  return fromJsonString(AuditEventSchema, row.payload);
}

/**
 * The event as the relay sends it to `Append`: details as `details_json`, the canonical JSON
 * text of the Struct the producer recorded. A string is far cheaper for the audit service to
 * decode and check than a Struct (a map of Value messages), and canonical JSON is what the
 * service would have made of the Struct, so both forms of the same details hash the same.
 */
export function outboxDeliveryEvent(row: Pick<OutboxEventRow, "payload">): AuditEvent {
  const event = outboxPayload(row);
  if (event.details !== undefined) {
    event.detailsJson = canonicalJson(event.details);
    event.details = undefined;
  }
  return event;
}
