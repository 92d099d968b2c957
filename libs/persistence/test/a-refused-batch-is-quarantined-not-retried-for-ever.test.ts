/**
 * An event the audit service refuses as permanently invalid never blocks the events behind it:
 * the relay finds it (Append stores a batch whole or not at all), quarantines its row — kept,
 * counted, listed, announced by an `audit.event_quarantined` event — and goes on delivering the
 * rest in order. Failures that are not refusals (audit down) are still retried, never quarantined.
 */
import { afterEach, describe, expect, it } from "vitest";
import { rawQuery, testDatabases, type TestDatabaseOptions } from "@lcp/testing/db";
import type { AuditEvent } from "@lcp/proto/audit/v1/audit_service_pb";
import {
  QUARANTINE_ACTION,
  createOutboxRelay,
  listQuarantinedEvents,
  newAuditEvent,
  quarantinedEventCount,
  recordAudit,
  type Database,
  type OutboxRelay,
} from "../src/index.js";
import { fixturePerTest, until } from "./helpers.js";

const audit = (id: string) => newAuditEvent({ action: "license.activate", actor: { kind: "system", id: "test" }, resource: { type: "license", id }, outcome: "denied" });

/** Stands for Connect's InvalidArgument from Append; the relay learns it through `isPermanentRefusal`. */
class RefusedError extends Error {
  override name = "RefusedError";
}
const isPermanentRefusal = (err: unknown) => err instanceof RefusedError;

/** An audit service that stores batches whole, refusing any batch holding a resource id it cannot take. */
function refusingAppend(refuse: (e: AuditEvent) => boolean) {
  const stored: AuditEvent[] = [];
  return {
    stored,
    resources: () => stored.map((e) => (e.action === QUARANTINE_ACTION ? `alarm:${e.resource?.id}` : e.resource?.id)),
    deliver: async (events: AuditEvent[]) => {
      const bad = events.findIndex(refuse);
      if (bad >= 0) throw new RefusedError(`events[${bad}]: text fields must not contain NUL characters`);
      stored.push(...events);
    },
  };
}

async function write(db: Database, ids: string[]): Promise<AuditEvent[]> {
  const events = ids.map(audit);
  await db.transactional(async (em) => {
    for (const e of events) recordAudit(em, e);
  });
  return events;
}

describe.each(testDatabases())("a refused batch is quarantined, not retried for ever ($name)", (tdb) => {
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

  it("delivers the events around a refused one in order, keeps the refused row, and raises an alarm event", async () => {
    const events = await write(db, ["a", "poison", "b", "c"]);
    const append = refusingAppend((e) => e.resource?.id === "poison");
    const relay = createOutboxRelay({ db, deliver: append.deliver, isPermanentRefusal, batchSize: 10 });

    // Three events and the alarm stored; the refused one is not counted as delivered.
    expect(await relay.flushNow()).toBe(4);
    expect(append.resources()).toEqual(["a", "b", "c", `alarm:${events[1]!.id}`]);
    const alarm = append.stored.at(-1)!;
    expect(alarm.outcome).toBe(3); // FAILURE
    expect(JSON.parse(alarm.detailsJson)).toMatchObject({ action: "license.activate", reason: expect.stringContaining("NUL characters") });

    // Kept, not dropped; not pending; counted and listed.
    const [row] = await rawQuery<{ id: string; delivered_at: unknown; quarantined_at: unknown; last_error: string }>(
      opts,
      "select id, delivered_at, quarantined_at, last_error from outbox_event where quarantined_at is not null",
    );
    expect(row).toMatchObject({ id: events[1]!.id, delivered_at: null });
    expect(row!.last_error).toContain("RefusedError");
    expect(await relay.stats()).toMatchObject({ pending: 0 });
    expect(await quarantinedEventCount(db)).toBe(1);
    const page = await listQuarantinedEvents(db, { pageSize: 10 });
    expect(page.more).toBe(false);
    expect(page.events).toEqual([expect.objectContaining({ id: events[1]!.id, action: "license.activate", events: 1, reason: expect.stringContaining("NUL") })]);

    // Later events keep flowing; the quarantined row is never sent again.
    await write(db, ["d"]);
    await relay.flushNow();
    expect(append.resources().slice(4)).toEqual(["d"]);
  });

  it("the running relay gets past a refused event instead of backing off for ever", async () => {
    await write(db, ["poison", "after-1", "after-2"]);
    const append = refusingAppend((e) => e.resource?.id === "poison");
    const relay = createOutboxRelay({ db, deliver: append.deliver, isPermanentRefusal, pollIntervalMs: 5, backoff: { initialMs: 5, maxMs: 20 } });
    relays.push(relay);
    relay.start();
    await until(() => append.resources().includes("after-2"));
    expect(append.resources().slice(0, 2)).toEqual(["after-1", "after-2"]);
    await until(() => append.resources().some((r) => r?.startsWith("alarm:")));
  });

  it("a failure that is not a refusal (audit unreachable) is retried, never quarantined", async () => {
    await write(db, ["a", "b"]);
    const relay = createOutboxRelay({ db, deliver: async () => Promise.reject(new Error("connect ECONNREFUSED")), isPermanentRefusal });
    await expect(relay.flushNow()).rejects.toThrow("ECONNREFUSED");
    expect(await quarantinedEventCount(db)).toBe(0);
    expect(await relay.stats()).toMatchObject({ pending: 2 });
  });

  it("lists quarantined rows page by page in seq order", async () => {
    const events = await write(db, ["p1", "ok", "p2", "p3"]);
    const append = refusingAppend((e) => e.resource?.id?.startsWith("p") ?? false);
    await createOutboxRelay({ db, deliver: append.deliver, isPermanentRefusal }).flushNow();
    const first = await listQuarantinedEvents(db, { pageSize: 2 });
    expect(first.more).toBe(true);
    const second = await listQuarantinedEvents(db, { pageSize: 2, afterSeq: first.events.at(-1)!.seq });
    expect(second.more).toBe(false);
    expect([...first.events, ...second.events].map((e) => e.id)).toEqual([events[0]!.id, events[2]!.id, events[3]!.id]);
  });
});
