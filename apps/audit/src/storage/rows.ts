import type { ChainLink } from "../chain/hash.js";
import type { NormalizedEvent } from "../validate.js";
import type { BucketCount, CountQuery, EventFilter, StoredEvent } from "./types.js";

/** The columns of `audit_event`, in the order every statement here lists them. */
export const COLUMNS = [
  "seq",
  "id",
  "occurred_at",
  "recorded_at",
  "actor_kind",
  "actor_id",
  "actor_roles",
  "action",
  "resource_type",
  "resource_id",
  "outcome",
  "request_id",
  "details",
  "producer",
  "prev_hash",
  "hash",
] as const;

/** `audit_event` as a driver returns it. */
export type RawRow = Record<(typeof COLUMNS)[number], unknown>;

/** Rows per INSERT statement: 16 columns × 500 stays far below SQLite's 32,766 parameters. */
export const INSERT_CHUNK = 500;
/** Rows per VerifyChain page. */
export const VERIFY_PAGE = 1_000;

/**
 * Appends one row's values, in {@link COLUMNS} order, to `out` (one flat array per statement, so
 * a batch allocates no array per row). `occurredAt` and `recordedAt` are already in the driver's
 * form (epoch ms for SQLite, ISO text for PostgreSQL).
 */
export function pushRowValues(out: unknown[], e: NormalizedEvent, link: ChainLink, producer: string, occurredAt: unknown, recordedAt: unknown): void {
  out.push(
    link.seq,
    e.id,
    occurredAt,
    recordedAt,
    e.actorKind,
    e.actorId,
    JSON.stringify(e.actorRoles),
    e.action,
    e.resourceType,
    e.resourceId,
    e.outcome,
    e.requestId,
    e.details,
    producer,
    link.prevHash,
    link.hash,
  );
}

/**
 * The WHERE clause and parameters of a ListEvents query; `param(i)` spells the i-th placeholder
 * (`?` or `$i`). The clause only ever contains fixed column names and placeholders.
 */
export function listQuery(filter: EventFilter, beforeSeq: number | undefined, limit: number, param: (i: number) => string, time: (d: Date) => unknown): { sql: string; params: unknown[] } {
  const where: string[] = [];
  const params: unknown[] = [];
  const add = (clause: string, value: unknown) => {
    params.push(value);
    where.push(clause.replace("?", param(params.length)));
  };
  if (beforeSeq !== undefined) add("seq < ?", beforeSeq);
  if (filter.action) add("action = ?", filter.action);
  if (filter.resourceType) add("resource_type = ?", filter.resourceType);
  if (filter.resourceId) add("resource_id = ?", filter.resourceId);
  if (filter.actorId) add("actor_id = ?", filter.actorId);
  if (filter.outcome) add("outcome = ?", filter.outcome);
  if (filter.startTime) add("occurred_at >= ?", time(filter.startTime));
  if (filter.endTime) add("occurred_at < ?", time(filter.endTime));
  params.push(limit);
  const sql =
    `select ${COLUMNS.join(",")} from audit_event` + (where.length ? ` where ${where.join(" and ")}` : "") + ` order by seq desc limit ${param(params.length)}`;
  return { sql, params };
}

// SQLite returns datetimes as epoch milliseconds; PostgreSQL (with MikroORM's global pg type
// parsers) as text ("2025-01-01 00:00:00.007+00"), or a Date without them; bigints come back as
// strings from pg. Normalise once here so the chain sees the same values on both drivers.
function toDate(v: unknown): Date {
  if (v instanceof Date) return v;
  if (typeof v === "number" || typeof v === "bigint" || (typeof v === "string" && /^-?\d+$/.test(v))) return new Date(Number(v));
  // "YYYY-MM-DD HH:MM:SS[.fff]+HH[:MM]" → ISO-8601 that Date parses everywhere.
  return new Date(String(v).replace(" ", "T").replace(/([+-]\d\d)$/, "$1:00"));
}

/** A driver row as a stored event. */
export function fromRow(r: RawRow): StoredEvent {
  return {
    seq: Number(r.seq),
    id: String(r.id),
    occurredAt: toDate(r.occurred_at),
    recordedAt: toDate(r.recorded_at),
    actorKind: String(r.actor_kind),
    actorId: String(r.actor_id),
    actorRoles: parseRoles(r.actor_roles),
    action: String(r.action),
    resourceType: String(r.resource_type),
    resourceId: String(r.resource_id),
    outcome: String(r.outcome),
    requestId: String(r.request_id),
    details: String(r.details),
    producer: String(r.producer),
    prevHash: String(r.prev_hash),
    hash: String(r.hash),
  };
}

function parseRoles(v: unknown): string[] {
  try {
    const parsed: unknown = JSON.parse(String(v));
    return Array.isArray(parsed) ? parsed.map(String) : [];
  } catch {
    // A hand-edited row: verification reports the hash mismatch; listing must not crash.
    return [];
  }
}

/**
 * The CountEvents statement on `driver` (its own placeholders): events in [start, end) of the
 * query's actions and resource type, counted per (bucket, action), the bucket numbered from 0 at
 * `start`. The range is a range on `occurred_at`, so it reads that column's index.
 */
export function countStatement(query: CountQuery, driver: "sqlite" | "postgresql"): { sql: string; params: unknown[] } {
  const pg = driver === "postgresql";
  const params: unknown[] = [];
  const next = (value: unknown) => {
    params.push(value);
    return pg ? `$${params.length}` : "?";
  };
  // SQLite keeps occurred_at as epoch milliseconds: integer division numbers the bucket (the
  // casts because the driver binds a JS number as REAL, which would divide exactly). PostgreSQL:
  // whole milliseconds since start (events are stored to the millisecond), divided by the width.
  const start = pg ? next(query.start) : next(query.start.getTime());
  const bucket = pg
    ? `div(cast(round(extract(epoch from (occurred_at - ${start}::timestamptz)) * 1000) as bigint), ${next(query.bucketMs)}::bigint)`
    : `(occurred_at - cast(${start} as integer)) / cast(${next(query.bucketMs)} as integer)`;
  const time = (d: Date) => (pg ? d : d.getTime());
  const where = [`occurred_at >= ${next(time(query.start))}`, `occurred_at < ${next(time(query.end))}`];
  // On SQLite the filters are written `+column`, which keeps them off the indexes: without
  // statistics its planner would otherwise take the action or resource index (equality beats a
  // range) and read every event of that action or type ever stored, not the range's.
  const col = (name: string) => (pg ? name : `+${name}`);
  if (query.actions.length > 0) {
    // PostgreSQL: one array parameter, so one statement text (one prepared statement) whatever the count.
    where.push(pg ? `action = any(${next([...query.actions])}::text[])` : `${col("action")} in (${query.actions.map((a) => next(a)).join(",")})`);
  }
  if (query.resourceType) where.push(`${col("resource_type")} = ${next(query.resourceType)}`);
  return { sql: `select ${bucket} as b, action, count(*) as n from audit_event where ${where.join(" and ")} group by 1, 2`, params };
}

/** A count row as a driver returns it (bigints as strings from pg). */
export interface RawCountRow {
  b: number | string | bigint;
  action: string;
  n: number | string | bigint;
}

/** A driver's count row as a bucket count. */
export function bucketCountOf(r: RawCountRow): BucketCount {
  return { bucket: Number(r.b), action: String(r.action), count: Number(r.n) };
}
