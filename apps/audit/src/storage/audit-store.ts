import type { Database, DriverName } from "@lcp/persistence";
import type { Knex } from "@mikro-orm/knex";
import { chainHash, GENESIS_HASH, verifyPage, type ChainBreak, type ChainCursor, type StoredChainEvent } from "../chain/hash.js";
import type { NormalizedEvent } from "../validate.js";

/** A stored event as the service reads it back (every column of `audit_event`). */
export interface StoredEvent extends StoredChainEvent {
  readonly recordedAt: Date;
}

/** What one append did. */
export interface AppendResult {
  /** Events newly chained. */
  readonly appended: number;
  /** Events whose id was already stored (or repeated within the batch): counted, not re-chained. */
  readonly duplicates: number;
  /** The chain head after the batch. */
  readonly headSeq: number;
}

/** ListEvents filters, already validated; empty strings and undefined mean "any". */
export interface EventFilter {
  readonly action?: string | undefined;
  readonly resourceType?: string | undefined;
  readonly resourceId?: string | undefined;
  readonly actorId?: string | undefined;
  readonly outcome?: string | undefined;
  /** Inclusive. */
  readonly startTime?: Date | undefined;
  /** Exclusive. */
  readonly endTime?: Date | undefined;
}

/** The answer of a chain verification. */
export type VerifyResult =
  | { readonly ok: true; readonly checked: number; readonly headSeq: number }
  | { readonly ok: false; readonly checked: number; readonly headSeq: number; readonly seq: number; readonly reason: string; readonly code: ChainBreak["code"] | "HEAD_MISMATCH" };

const COLUMNS = [
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

// 16 columns × 500 rows stays far below SQLite's 32,766 bound parameters per statement.
const INSERT_CHUNK = 500;
const VERIFY_PAGE = 1_000;

/**
 * The audit log's storage: appends extend the hash chain under the chain-head lock, reads page
 * by seq. Raw SQL through the ORM's knex on purpose: an append is one transaction with a handful
 * of set-based statements however large the batch, where a unit-of-work flush would cost a round
 * trip and change-set per row (DESIGN.md §11: Append ≥ 0.4× a bare batched INSERT).
 */
export interface AuditStore {
  /** Appends `events` for `producer` in one transaction; idempotent by event id. */
  append(producer: string, events: readonly NormalizedEvent[], recordedAt: Date): Promise<AppendResult>;
  /** Newest first: events matching `filter` with `seq < beforeSeq` (all when undefined), at most `limit`. */
  list(filter: EventFilter, beforeSeq: number | undefined, limit: number): Promise<StoredEvent[]>;
  /** Recomputes the chain over [fromSeq, toSeq] (defaults: 1 and the head), page by page. */
  verify(fromSeq: number | undefined, toSeq: number | undefined): Promise<VerifyResult>;
  /** The seq and hash of the chain head (seq 0 and the genesis hash when empty). */
  head(): Promise<{ seq: number; hash: string }>;
}

/** Builds the store over an opened (migrated) audit database. */
export function createAuditStore(db: Database): AuditStore {
  const knex = db.em().getKnex() as Knex;
  const driver: DriverName = db.driver;

  const rows = async <T>(q: Knex | Knex.Transaction, sql: string, params: readonly unknown[] = []): Promise<T[]> => {
    const res: unknown = await q.raw(sql, params as Knex.RawBinding[]);
    // better-sqlite3 answers with the rows, pg with a Result.
    return (Array.isArray(res) ? res : ((res as { rows?: T[] }).rows ?? [])) as T[];
  };

  const head = async (q: Knex | Knex.Transaction = knex) => {
    const [row] = await rows<{ seq: number | string; hash: string }>(q, "select seq, hash from audit_chain_head where id = 1");
    if (!row) throw new Error("audit_chain_head has no row: the database was not migrated");
    return { seq: Number(row.seq), hash: row.hash };
  };

  return {
    head: () => head(),

    async append(producer, events, recordedAt) {
      return knex.transaction(async (trx) => {
        // Serialise on the chain head first, before reading anything: replicas on one PostgreSQL
        // take turns here, so each sees the other's committed rows and seqs stay gapless. On
        // SQLite a write as the first statement takes the database's write lock up front
        // (waiting out busy_timeout), instead of failing later when a read lock must upgrade.
        if (driver === "postgresql") {
          await trx.raw("select 1 from audit_chain_head where id = 1 for update");
        } else {
          await trx.raw("update audit_chain_head set seq = seq where id = 1");
        }
        const current = await head(trx);

        // Idempotency by id, checked under the lock so two replicas never both chain one event.
        const unique = new Map<string, NormalizedEvent>();
        for (const e of events) if (!unique.has(e.id)) unique.set(e.id, e);
        const ids = [...unique.keys()];
        for (let i = 0; i < ids.length; i += INSERT_CHUNK) {
          const chunk = ids.slice(i, i + INSERT_CHUNK);
          const existing = await rows<{ id: string }>(trx, `select id from audit_event where id in (${chunk.map(() => "?").join(",")})`, chunk);
          for (const { id } of existing) unique.delete(id);
        }
        const fresh = [...unique.values()];
        if (fresh.length === 0) return { appended: 0, duplicates: events.length, headSeq: current.seq };

        let prevHash = current.hash;
        let seq = current.seq;
        const values: unknown[][] = [];
        for (const e of fresh) {
          seq++;
          const chained = { ...e, seq, producer };
          const hash = chainHash(chained, prevHash);
          values.push([
            seq,
            e.id,
            e.occurredAt,
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
            prevHash,
            hash,
          ]);
          prevHash = hash;
        }
        const rowPlaceholder = `(${COLUMNS.map(() => "?").join(",")})`;
        for (let i = 0; i < values.length; i += INSERT_CHUNK) {
          const chunk = values.slice(i, i + INSERT_CHUNK);
          await trx.raw(
            `insert into audit_event (${COLUMNS.join(",")}) values ${chunk.map(() => rowPlaceholder).join(",")}`,
            chunk.flat() as Knex.RawBinding[],
          );
        }
        await trx.raw("update audit_chain_head set seq = ?, hash = ? where id = 1", [seq, prevHash]);
        return { appended: fresh.length, duplicates: events.length - fresh.length, headSeq: seq };
      });
    },

    async list(filter, beforeSeq, limit) {
      const where: string[] = [];
      const params: unknown[] = [];
      const eq = (column: string, value: string | undefined) => {
        if (value) {
          where.push(`${column} = ?`);
          params.push(value);
        }
      };
      if (beforeSeq !== undefined) {
        where.push("seq < ?");
        params.push(beforeSeq);
      }
      eq("action", filter.action);
      eq("resource_type", filter.resourceType);
      eq("resource_id", filter.resourceId);
      eq("actor_id", filter.actorId);
      eq("outcome", filter.outcome);
      if (filter.startTime) {
        where.push("occurred_at >= ?");
        params.push(filter.startTime);
      }
      if (filter.endTime) {
        where.push("occurred_at < ?");
        params.push(filter.endTime);
      }
      params.push(limit);
      const sql =
        `select ${COLUMNS.join(",")} from audit_event` +
        (where.length ? ` where ${where.join(" and ")}` : "") +
        " order by seq desc limit ?";
      return (await rows<RawRow>(knex, sql, params)).map(fromRow);
    },

    async verify(fromSeq, toSeq) {
      const h = await head();
      const from = fromSeq ?? 1;
      const to = Math.min(toSeq ?? h.seq, h.seq);
      if (from > to) return { ok: true, checked: 0, headSeq: h.seq };

      // Starting mid-chain, link the first event to its stored predecessor; if that row is gone
      // too, the first link is taken as read (the range was asked for, not what precedes it).
      let prevHash: string | undefined = GENESIS_HASH;
      if (from > 1) {
        const [before] = await rows<{ hash: string }>(knex, "select hash from audit_event where seq = ?", [from - 1]);
        prevHash = before?.hash;
      }
      let cursor: ChainCursor = { nextSeq: from, prevHash };
      let checked = 0;
      while (cursor.nextSeq <= to) {
        const page = (
          await rows<RawRow>(knex, `select ${COLUMNS.join(",")} from audit_event where seq >= ? and seq <= ? order by seq limit ?`, [
            cursor.nextSeq,
            to,
            VERIFY_PAGE,
          ])
        ).map(fromRow);
        if (page.length === 0) break;
        const result = verifyPage(page, cursor);
        checked += result.checked;
        if (!result.ok) return { ok: false, checked, headSeq: h.seq, seq: result.seq, reason: result.reason, code: result.code };
        cursor = result.cursor;
      }
      if (cursor.nextSeq <= to) {
        return { ok: false, checked, headSeq: h.seq, seq: cursor.nextSeq, reason: `gap: seq ${cursor.nextSeq} is missing`, code: "GAP" };
      }
      // The head row closes the chain: a removed or rewritten last event shows here.
      if (to === h.seq && cursor.prevHash !== undefined && cursor.prevHash !== h.hash) {
        return { ok: false, checked, headSeq: h.seq, seq: h.seq, reason: `the chain head does not match seq ${h.seq}`, code: "HEAD_MISMATCH" };
      }
      return { ok: true, checked, headSeq: h.seq };
    },
  };
}

type RawRow = Record<(typeof COLUMNS)[number], unknown>;

// SQLite returns datetimes as epoch milliseconds; through MikroORM's pg setup PostgreSQL returns
// timestamptz as text ("2025-01-01 00:00:00.007+00") or a Date; bigints come back as strings from
// pg. Normalise once here so the chain sees the same values on both drivers.
function toDate(v: unknown): Date {
  if (v instanceof Date) return v;
  if (typeof v === "number" || (typeof v === "string" && /^-?\d+$/.test(v))) return new Date(Number(v));
  // "YYYY-MM-DD HH:MM:SS[.fff]+HH[:MM]" → ISO-8601 that Date parses everywhere.
  const iso = String(v)
    .replace(" ", "T")
    .replace(/([+-]\d\d)$/, "$1:00");
  return new Date(iso);
}

function fromRow(r: RawRow): StoredEvent {
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
    // A hand-edited row: verification will report the hash mismatch; listing must not crash.
    return [];
  }
}
