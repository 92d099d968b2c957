import { defineEntity, p, type InferEntity } from "@mikro-orm/core";

/**
 * One stored audit event (table `audit_event`): the append-only, hash-chained log.
 * `seq` is the chain position (gapless from 1, the primary key, so pages walk it by index);
 * `id` is the producer's UUID and the idempotency key of `Append`.
 * Hashes are lowercase hex; `details` and `actor_roles` are JSON text (not JSON columns), so both
 * drivers store exactly the bytes that were hashed.
 */
export const AuditEventRecord = defineEntity({
  name: "AuditEventRecord",
  tableName: "audit_event",
  properties: {
    // number mode: 2^53 events is beyond any log's lifetime, and the canonical encoding writes a JSON number.
    seq: p.bigint("number").primary().autoincrement(false),
    id: p.string().length(36).unique(),
    occurredAt: p.datetime(),
    recordedAt: p.datetime(),
    actorKind: p.string().length(16),
    actorId: p.string().length(256),
    actorRoles: p.text(),
    action: p.string().length(128),
    resourceType: p.string().length(64),
    resourceId: p.string().length(256),
    outcome: p.string().length(16),
    requestId: p.string().length(128),
    details: p.text(),
    producer: p.string().length(64),
    prevHash: p.string().length(64),
    hash: p.string().length(64),
  },
  // One index per ListEvents filter that narrows a lot; each ends in seq so "newest first"
  // pages walk the index. Outcome alone barely narrows, so it is filtered on the fly.
  indexes: [
    { name: "audit_event_action_seq_index", properties: ["action", "seq"] },
    { name: "audit_event_resource_seq_index", properties: ["resourceType", "resourceId", "seq"] },
    { name: "audit_event_actor_seq_index", properties: ["actorId", "seq"] },
    { name: "audit_event_occurred_at_index", properties: ["occurredAt"] },
  ],
});

/** An `audit_event` row as the ORM hydrates it. */
export type AuditEventRow = InferEntity<typeof AuditEventRecord>;

/**
 * The chain head (table `audit_chain_head`, exactly one row, id 1): the last seq and its hash.
 * Every append locks this row first, so replicas sharing one PostgreSQL take turns extending
 * one gapless chain; the migration inserts it at seq 0 with the genesis hash.
 */
export const AuditChainHead = defineEntity({
  name: "AuditChainHead",
  tableName: "audit_chain_head",
  properties: {
    id: p.integer().primary().autoincrement(false),
    seq: p.bigint("number"),
    hash: p.string().length(64),
  },
});

/** The `audit_chain_head` row as the ORM hydrates it. */
export type AuditChainHeadRow = InferEntity<typeof AuditChainHead>;

/** Every entity of the audit app, for `createOrm`. */
export const auditEntities = [AuditEventRecord, AuditChainHead];
