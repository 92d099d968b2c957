import { createRequire } from "node:module";
import { SQLITE_CONNECTION_PRAGMAS } from "@lcp/persistence";
import { createChainLinker } from "../chain/hash.js";
import type { NormalizedEvent } from "../validate.js";
import type { AppendResult, AuditStore } from "./types.js";
import { bucketCountOf, COLUMNS, countStatement, fromRow, INSERT_CHUNK, listQuery, pushRowValues, VERIFY_PAGE, type RawCountRow, type RawRow } from "./rows.js";
import { walkChain } from "./chain-walk.js";

// better-sqlite3 ships no types (and @types/better-sqlite3 is not installed); this is all we use.
interface Statement {
  run(...params: unknown[]): unknown;
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
}
interface Connection {
  pragma(sql: string): unknown;
  prepare(sql: string): Statement;
  transaction<A extends unknown[], R>(fn: (...args: A) => R): { immediate(...args: A): R };
  close(): void;
}
const Sqlite = createRequire(import.meta.url)("better-sqlite3") as new (file: string) => Connection;

/**
 * The store on SQLite: its own connection to the app's database file, every statement prepared
 * once. An append is one synchronous `BEGIN IMMEDIATE` transaction: the write lock is taken
 * first (waiting out busy_timeout if another process holds it), so the head read under it is
 * the head, and no read lock ever has to be upgraded.
 */
export function createSqliteAuditStore(file: string): AuditStore {
  const conn = new Sqlite(file);
  // Set up as the ORM's connections to the same file are.
  for (const pragma of SQLITE_CONNECTION_PRAGMAS) conn.pragma(pragma);

  const cache = new Map<string, Statement>();
  const stmt = (sql: string) => {
    let s = cache.get(sql);
    if (!s) cache.set(sql, (s = conn.prepare(sql)));
    return s;
  };
  const time = (d: Date) => d.getTime();
  const rowSql = `(${COLUMNS.map(() => "?").join(",")})`;
  const headStmt = conn.prepare("select seq, hash from audit_chain_head where id = 1");
  const readHead = () => {
    const row = headStmt.get() as { seq: number | bigint; hash: string } | undefined;
    if (!row) throw new Error("audit_chain_head has no row: the database was not migrated");
    return { seq: Number(row.seq), hash: row.hash };
  };
  const updateHead = conn.prepare("update audit_chain_head set seq = ?, hash = ? where id = 1");

  const appendTx = conn.transaction((producer: string, events: readonly NormalizedEvent[], recordedAt: Date): AppendResult => {
    const current = readHead();
    // Idempotency by id, checked inside the write transaction so no other writer interleaves.
    const fresh = new Map<string, NormalizedEvent>();
    for (const e of events) if (!fresh.has(e.id)) fresh.set(e.id, e);
    const ids = [...fresh.keys()];
    for (let i = 0; i < ids.length; i += INSERT_CHUNK) {
      const chunk = ids.slice(i, i + INSERT_CHUNK);
      const existing = stmt(`select id from audit_event where id in (${chunk.map(() => "?").join(",")})`).all(...chunk) as { id: string }[];
      for (const { id } of existing) fresh.delete(id);
    }
    if (fresh.size === 0) return { appended: 0, duplicates: events.length, headSeq: current.seq };

    const linker = createChainLinker(current);
    const at = recordedAt.getTime();
    const values: unknown[] = [];
    for (const e of fresh.values()) pushRowValues(values, e, linker.next(e, producer), producer, e.occurredAt.getTime(), at);
    const width = COLUMNS.length;
    for (let i = 0; i < values.length; i += INSERT_CHUNK * width) {
      const chunk = values.slice(i, i + INSERT_CHUNK * width);
      stmt(`insert into audit_event (${COLUMNS.join(",")}) values ${Array(chunk.length / width).fill(rowSql).join(",")}`).run(...chunk);
    }
    const { seq, hash } = linker.head();
    updateHead.run(seq, hash);
    return { appended: fresh.size, duplicates: events.length - fresh.size, headSeq: seq };
  });

  const pageStmt = conn.prepare(`select ${COLUMNS.join(",")} from audit_event where seq >= ? and seq <= ? order by seq limit ?`);
  const hashStmt = conn.prepare("select hash from audit_event where seq = ?");
  let closed = false;

  return {
    append: async (producer, events, recordedAt) => appendTx.immediate(producer, events, recordedAt),
    head: async () => readHead(),
    async list(filter, beforeSeq, limit) {
      const { sql, params } = listQuery(filter, beforeSeq, limit, () => "?", time);
      return (stmt(sql).all(...params) as RawRow[]).map(fromRow);
    },
    async count(query) {
      const { sql, params } = countStatement(query, "sqlite");
      return (stmt(sql).all(...params) as RawCountRow[]).map(bucketCountOf);
    },
    verify: (fromSeq, toSeq) =>
      walkChain(
        {
          head: async () => readHead(),
          hashOf: async (seq) => (hashStmt.get(seq) as { hash: string } | undefined)?.hash,
          page: async (from, to, limit) => (pageStmt.all(from, to, limit) as RawRow[]).map(fromRow),
        },
        fromSeq,
        toSeq,
        VERIFY_PAGE,
      ),
    async close() {
      if (closed) return;
      closed = true;
      conn.close();
    },
  };
}
