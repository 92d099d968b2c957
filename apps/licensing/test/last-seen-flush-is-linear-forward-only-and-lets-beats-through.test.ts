/**
 * The heartbeat's coalescing writer (last-seen-writer.ts) on both drivers, at fleet size: 5,000
 * boxes marked in one second are written in batches, each box's `last_seen_at` only moves forward,
 * a deployment that is not bound (rebound meanwhile) is never marked seen, and the event loop keeps
 * turning while the flush writes — a flush must not hold every held stream's beats for its whole
 * length (on SQLite its statements run on a thread of their own, on PostgreSQL on the pool).
 */
import { createLogger } from "@lcp/rpc";
import { testDatabases } from "@lcp/testing/db";
import { describe, expect, it } from "vitest";
import { createLastSeenWriter } from "../src/heartbeat/last-seen-writer.js";
import { licensingDatabase } from "./storage-db.js";

const BOXES = 5_000;
const BATCH = 1_000;

describe.each(testDatabases())("last-seen flush ($name)", (tdb) => {
  const store = licensingDatabase(tdb);

  it("writes 5,000 marks in batches, forward only, bound boxes only, letting the event loop turn between batches", async () => {
    const { db, pg, sql } = await store.open();
    const t0 = Date.UTC(2026, 10, 26, 12);
    const date = (ms: number) => (pg ? new Date(ms).toISOString() : ms);
    const ms = (v: unknown) => (v === null ? null : typeof v === "number" ? v : typeof v === "string" && /^\d+$/.test(v) ? Number(v) : new Date(v as string).getTime());
    const id = (i: number) => `00000000-0000-7000-8000-${String(i).padStart(12, "0")}`;

    // Every box last seen at t0, except: every 10th already seen LATER (t0 + 10 min) than the mark
    // it gets, and every 7th unbound (activated_at null: rebound after its beat).
    const cols = "id, name, customer, kind, subscription_status, license_expires_at, activated_at, fingerprint_hash, last_seen_at, state, state_changed_at, version, created_at, updated_at";
    const p = (n: number) => (pg ? `$${n}` : "?");
    for (let start = 0; start < BOXES; start += 500) {
      const rows: string[] = [];
      const params: unknown[] = [];
      for (let i = start; i < start + 500; i++) {
        const bound = i % 7 !== 0;
        const seen = i % 10 === 0 ? t0 + 600_000 : t0;
        const k = params.length;
        rows.push(`(${p(k + 1)}, 'site', 'c', 'ON_PREM', 'VALID', ${p(k + 2)}, ${p(k + 3)}, ${bound ? `'${"a".repeat(64)}'` : "null"}, ${p(k + 4)}, 'ACTIVE', ${p(k + 5)}, 1, ${p(k + 6)}, ${p(k + 7)})`);
        params.push(id(i), date(t0 + 365 * 86_400_000), bound ? date(t0) : null, date(seen), date(t0), date(t0), date(t0));
      }
      await sql(`insert into deployment (${cols}) values ${rows.join(", ")}`, params);
    }

    const writer = createLastSeenWriter({ db, log: createLogger("test", "silent"), flushEveryMs: 60_000, batchSize: BATCH });
    const mark = t0 + 60_000;
    for (let i = 0; i < BOXES; i++) writer.seen(id(i), mark);
    // A box marked twice keeps its latest mark, to the millisecond.
    writer.seen(id(1), mark + 1_234);
    expect(writer.pending()).toBe(BOXES);

    // Count event-loop turns while the flush runs: a callback queued with setImmediate before it
    // starts must run before it ends, and keep running while its batches are written.
    let turns = 0;
    let flushing = true;
    const tick = () => {
      turns++;
      if (flushing) setImmediate(tick);
    };
    setImmediate(tick);
    await writer.flush();
    flushing = false;
    expect(writer.statements.lastSeen).toBe(BOXES / BATCH);
    expect(turns).toBeGreaterThanOrEqual(BOXES / BATCH);
    expect(writer.pending()).toBe(0);

    const rows = await sql<{ id: string; last_seen_at: unknown; activated_at: unknown }>("select id, last_seen_at, activated_at from deployment");
    expect(rows).toHaveLength(BOXES);
    const byId = new Map(rows.map((r) => [r.id, ms(r.last_seen_at)]));
    for (let i = 0; i < BOXES; i++) {
      const expected = i % 7 === 0 ? (i % 10 === 0 ? t0 + 600_000 : t0) : i % 10 === 0 ? t0 + 600_000 : i === 1 ? mark + 1_234 : mark;
      expect(byId.get(id(i)), `box ${i}`).toBe(expected);
    }
    await writer.close();
  });
});
