import { afterEach, describe, expect, it } from "vitest";
import { rawQuery, testDatabases, type TestDatabaseOptions } from "@lcp/testing/db";
import type { AuditEvent } from "@lcp/proto/audit/v1/audit_service_pb";
import { createOutboxRelay, newAuditEvent, recordAudit, writeAuditNow, type Database, type OutboxRelay } from "../src/index.js";
import { fixturePerTest, openFixture, until } from "./helpers.js";

const audit = (i: number, now = new Date()) =>
  newAuditEvent({ action: `test.${i}`, actor: { kind: "system", id: "test" }, resource: { type: "thing", id: String(i) }, outcome: "success", now });

async function writeMany(db: Database, n: number, now?: Date): Promise<AuditEvent[]> {
  const events = Array.from({ length: n }, (_, i) => audit(i, now));
  await db.transactional(async (em) => {
    for (const e of events) recordAudit(em, e);
  });
  return events;
}

/** A fake audit service: records batches, fails the first `failures` calls. */
function fakeAppend(failures = 0) {
  const batches: string[][] = [];
  let calls = 0;
  return {
    batches,
    get calls() {
      return calls;
    },
    get delivered() {
      return batches.flat();
    },
    deliver: async (events: AuditEvent[]) => {
      calls += 1;
      if (calls <= failures) throw new Error(`audit unavailable (call ${calls})`);
      batches.push(events.map((e) => e.id));
    },
  };
}

describe.each(testDatabases())("outbox relay ($name)", (tdb) => {
  let opts: TestDatabaseOptions;
  let db: Database;
  const relays: OutboxRelay[] = [];
  fixturePerTest(tdb, (o, d) => {
    opts = o;
    db = d;
  });
  afterEach(async () => {
    for (const r of relays.splice(0)) await r.stop();
  });

  it("flushNow delivers everything pending in seq order, in batches, and marks it delivered", async () => {
    const events = await writeMany(db, 25);
    const append = fakeAppend();
    const relay = createOutboxRelay({ db, deliver: append.deliver, batchSize: 10 });
    expect(await relay.flushNow()).toBe(25);
    expect(append.batches.map((b) => b.length)).toEqual([10, 10, 5]);
    expect(append.delivered).toEqual(events.map((e) => e.id));
    expect(await relay.stats()).toEqual({ pending: 0, oldestPendingAgeMs: 0 });
    expect(await relay.flushNow()).toBe(0);
    const undelivered = await rawQuery(opts, "select seq from outbox_event where delivered_at is null");
    expect(undelivered).toHaveLength(0);
  });

  it("marks nothing delivered while deliver rejects, and records attempts and the error", async () => {
    await writeMany(db, 3);
    const relay = createOutboxRelay({ db, deliver: async () => Promise.reject(new Error("Append: unavailable")) });
    await expect(relay.flushNow()).rejects.toThrow("unavailable");
    await expect(relay.flushNow()).rejects.toThrow("unavailable");
    const rows = await rawQuery<{ attempts: number; last_error: string; delivered_at: unknown }>(opts, "select attempts, last_error, delivered_at from outbox_event");
    expect(rows).toHaveLength(3);
    for (const r of rows) {
      expect(r).toMatchObject({ attempts: 2, delivered_at: null });
      expect(r.last_error).toContain("Append: unavailable");
    }
    expect((await relay.stats()).pending).toBe(3);
  });

  it("backs off while deliver fails, then delivers every event exactly once after recovery", async () => {
    const events = await writeMany(db, 7);
    const append = fakeAppend(4);
    const relay = createOutboxRelay({ db, deliver: append.deliver, batchSize: 3, pollIntervalMs: 5, backoff: { initialMs: 5, maxMs: 40 } });
    relays.push(relay);
    const started = Date.now();
    relay.start();
    await until(async () => (await relay.stats()).pending === 0);
    // 4 failed attempts with backoff 5/10/20/40 ms ceilings (at least half of each): ≥ 37 ms.
    expect(Date.now() - started).toBeGreaterThanOrEqual(35);
    expect(append.calls).toBe(4 + 3);
    expect(append.delivered).toEqual(events.map((e) => e.id));
    expect(new Set(append.delivered).size).toBe(7);
  });

  it("picks up events written while running, and notify() delivers without waiting for the poll", async () => {
    const append = fakeAppend();
    const relay = createOutboxRelay({ db, deliver: append.deliver, pollIntervalMs: 60_000 });
    relays.push(relay);
    relay.start();
    const e = audit(1);
    await writeAuditNow(db, e);
    relay.notify();
    await until(() => append.delivered.includes(e.id), 5_000);
  });

  it("stop waits for the batch in flight, which is then marked delivered", async () => {
    await writeMany(db, 2);
    let release!: () => void;
    let entered!: () => void;
    const inDeliver = new Promise<void>((r) => (entered = r));
    const relay = createOutboxRelay({
      db,
      deliver: () => {
        entered();
        return new Promise<void>((r) => (release = r));
      },
    });
    relay.start();
    await inDeliver;
    const stopped = relay.stop();
    let done = false;
    void stopped.then(() => (done = true));
    await new Promise((r) => setTimeout(r, 30));
    expect(done).toBe(false);
    release();
    await stopped;
    expect((await relay.stats()).pending).toBe(0);
  });

  it("stats report the depth and the age of the oldest pending event", async () => {
    const t0 = new Date("2026-03-01T00:00:00Z");
    await writeMany(db, 2, t0);
    await writeMany(db, 1, new Date(t0.getTime() + 5_000));
    const relay = createOutboxRelay({ db, deliver: async () => undefined, clock: { now: () => new Date(t0.getTime() + 60_000) } });
    expect(await relay.stats()).toEqual({ pending: 3, oldestPendingAgeMs: 60_000 });
  });

  it("purges delivered events past the retention, never pending ones", async () => {
    let now = Date.parse("2026-03-01T00:00:00Z");
    await writeMany(db, 3);
    const relay = createOutboxRelay({ db, deliver: async () => undefined, retentionMs: 1_000, purgeIntervalMs: 0, pollIntervalMs: 5, clock: { now: () => now } });
    relays.push(relay);
    await relay.flushNow();
    await writeMany(db, 1); // stays pending: the loop below delivers it only after the purge check
    now += 2_000;
    relay.start();
    await until(async () => (await rawQuery(opts, "select seq from outbox_event")).length === 1);
    await relay.stop();
  });

  if (tdb.name === "postgresql") {
    it("two relays on one database deliver each event once and in order", async () => {
      const other = await openFixture({ ...opts, cleanup: async () => undefined });
      try {
        const events = await writeMany(db, 200);
        const delivered: string[] = [];
        let inFlight = 0;
        let overlapped = false;
        const deliver = async (batch: AuditEvent[]) => {
          inFlight += 1;
          if (inFlight > 1) overlapped = true;
          await new Promise((r) => setTimeout(r, 2));
          delivered.push(...batch.map((e) => e.id));
          inFlight -= 1;
        };
        const a = createOutboxRelay({ db, deliver, batchSize: 7, pollIntervalMs: 1 });
        const b = createOutboxRelay({ db: other, deliver, batchSize: 7, pollIntervalMs: 1 });
        relays.push(a, b);
        a.start();
        b.start();
        await until(async () => (await a.stats()).pending === 0);
        await a.stop();
        await b.stop();
        expect(overlapped).toBe(false);
        expect(delivered).toEqual(events.map((e) => e.id));
      } finally {
        await other.close();
      }
    });
  }
});
