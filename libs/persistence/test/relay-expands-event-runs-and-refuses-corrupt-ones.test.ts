/**
 * An outbox row may hold a run of events (`EventRun`: one template, consecutive UUIDv7 ids, one
 * resource id per event) — how a bulk change such as a sweep page keeps its audit write small. The
 * relay ships a run as the events it stands for, in order, `batchSize` per Append; a run that
 * fails part-way is re-sent whole with the same ids; and a corrupt run is refused loudly — its
 * rows stay undelivered with the error recorded, nothing of it is sent, nothing after it overtakes it.
 */
import { toJsonString } from "@bufbuild/protobuf";
import { AuditEventSchema, type AuditEvent } from "@lcp/proto/audit/v1/audit_service_pb";
import { rawQuery, testDatabases, type TestDatabaseOptions } from "@lcp/testing/db";
import { describe, expect, it } from "vitest";
import {
  createOutboxRelay,
  decodeEventRun,
  encodeEventRun,
  EventRunError,
  eventRunTexts,
  newAuditEvent,
  outboxPayload,
  outboxRowEvents,
  recordAudit,
  type Database,
  type EventRun,
} from "../src/index.js";
import { fixturePerTest } from "./helpers.js";

const RESOURCE = "00000000-0000-7000-8000-0000000000aa";
const EVENT = "00000000-0000-7000-8000-0000000000ee";

/** A run of `n` events of one template, as a producer's SQL would write it. */
function runOf(n: number, first = 0): EventRun {
  const event = newAuditEvent({
    action: "deployment.grace",
    actor: { kind: "service", id: "fleet-sweep" },
    resource: { type: "deployment", id: RESOURCE },
    outcome: "success",
    details: { from: "ACTIVE", to: "GRACE", directives: [], sweepId: "s-1" },
    now: new Date("2026-11-26T12:00:00.000Z"),
  });
  event.id = EVENT;
  const [p0, rest] = toJsonString(AuditEventSchema, event).split(EVENT) as [string, string];
  const [p1, p2] = rest.split(RESOURCE) as [string, string];
  return {
    idPrefix: "01a21980-6a87-7bdd-b7cf-",
    idStart: 0xfff0,
    parts: [p0, p1, p2],
    resourceIds: Array.from({ length: n }, (_, i) => `00000000-0000-7000-8000-${String(first + i).padStart(12, "0")}`),
  };
}

/** Writes rows straight into the outbox table (a run's payload as SQL writes it, or a corrupt one). */
async function insertRow(opts: TestDatabaseOptions, id: string, payload: string): Promise<void> {
  const pg = Boolean(opts.databaseUrl);
  const at = pg ? new Date().toISOString() : Date.now();
  await rawQuery(
    opts,
    pg
      ? "insert into outbox_event (id, action, occurred_at, payload, attempts) values ($1, 'deployment.grace', $2, $3, 0)"
      : "insert into outbox_event (id, action, occurred_at, payload, attempts) values (?, 'deployment.grace', ?, ?, 0)",
    [id, at, payload],
  );
}

function recorder(failAfterCalls = Infinity) {
  const sent: AuditEvent[][] = [];
  return {
    sent,
    deliver: async (events: AuditEvent[]) => {
      if (sent.length >= failAfterCalls) throw new Error("the relay died here");
      sent.push(events);
    },
  };
}

describe("event runs", () => {
  it("expand to the texts one row per event would hold, ids counting up from idStart", () => {
    const run = runOf(3);
    const texts = eventRunTexts(run);
    expect(texts).toHaveLength(3);
    for (const [i, text] of texts.entries()) {
      const id = `01a21980-6a87-7bdd-b7cf-${(0xfff0 + i).toString(16).padStart(12, "0")}`;
      expect(text).toBe(run.parts[0] + id + run.parts[1] + run.resourceIds[i] + run.parts[2]);
      const event = outboxRowEvents({ payload: encodeEventRun(run) })[i]!;
      expect(event).toMatchObject({ id, resource: { id: run.resourceIds[i] } });
      expect(toJsonString(AuditEventSchema, event)).toBe(text);
    }
    expect(decodeEventRun(encodeEventRun(run))).toEqual(run);
    expect(() => outboxPayload({ payload: encodeEventRun(run) })).toThrow(EventRunError);
  });

  const good = encodeEventRun(runOf(2));
  const corrupt: Array<[string, string]> = [
    ["a count that is not the run's", good.replace("lcp-event-run:2:", "lcp-event-run:3:")],
    ["no count", good.replace("lcp-event-run:2:", "lcp-event-run::")],
    ["a body that is not JSON", good.slice(0, -2)],
    ["a bad id prefix", encodeEventRun({ ...runOf(2), idPrefix: "not-a-uuid-prefix-------" })],
    ["an id counter past 48 bits", encodeEventRun({ ...runOf(2), idStart: 2 ** 48 - 1 })],
    ["an empty resource id", encodeEventRun({ ...runOf(2), resourceIds: ["x", ""] })],
    ["two parts", encodeEventRun({ ...runOf(2), parts: ["{", "}"] as unknown as [string, string, string] })],
    ["parts that make no event", encodeEventRun({ ...runOf(2), parts: ['{"id":"', '","resource":{"id":"', '"'] })],
    ["parts that put the ids elsewhere", encodeEventRun({ ...runOf(2), parts: ['{"requestId":"', '","resource":{"id":"', '"}}'] })],
  ];
  it.each(corrupt)("refuse %s", (_, payload) => {
    expect(() => outboxRowEvents({ payload })).toThrow(EventRunError);
  });
});

describe.each(testDatabases())("the relay ships event runs ($name)", (tdb) => {
  let opts: TestDatabaseOptions;
  let db: Database;
  fixturePerTest(tdb, (o, d) => {
    opts = o;
    db = d;
  });

  it("in outbox order, batchSize per Append, a run marked delivered once all its events are stored", async () => {
    const single = newAuditEvent({ action: "license.issue", actor: { kind: "system", id: "t" }, resource: { type: "license", id: "l-1" }, outcome: "success" });
    await db.transactional(async (em) => void recordAudit(em, single));
    const runA = runOf(25);
    const runB = runOf(7, 100);
    await insertRow(opts, `${runA.idPrefix}${"0".repeat(12)}`, encodeEventRun(runA));
    await insertRow(opts, `${runB.idPrefix}${"1".repeat(12)}`, encodeEventRun({ ...runB, idStart: 0x10000 }));
    const append = recorder();
    const relay = createOutboxRelay({ db, deliver: append.deliver, batchSize: 10 });
    expect(await relay.stats()).toMatchObject({ pending: 33 });
    expect(await relay.flushNow()).toBe(33);
    expect(append.sent.map((b) => b.length)).toEqual([10, 10, 10, 3]);
    const ids = append.sent.flat().map((e) => e.id);
    expect(ids[0]).toBe(single.id);
    expect(ids.slice(1, 26)).toEqual(runA.resourceIds.map((_, i) => `${runA.idPrefix}${(runA.idStart + i).toString(16).padStart(12, "0")}`));
    expect(append.sent.flat().slice(26).map((e) => e.resource!.id)).toEqual(runB.resourceIds);
    // Delivered as the relay always sends details: canonical JSON text.
    expect(append.sent.flat()[1]).toMatchObject({ details: undefined, detailsJson: '{"directives":[],"from":"ACTIVE","sweepId":"s-1","to":"GRACE"}' });
    expect(await relay.stats()).toEqual({ pending: 0, oldestPendingAgeMs: 0 });
  });

  it("a relay that dies part-way through a run leaves it undelivered; the next one re-sends it whole, with the same ids", async () => {
    const run = runOf(30);
    await insertRow(opts, `${run.idPrefix}${"0".repeat(12)}`, encodeEventRun(run));
    const dying = recorder(2);
    await expect(createOutboxRelay({ db, deliver: dying.deliver, batchSize: 10 }).flushNow()).rejects.toThrow("the relay died here");
    expect(dying.sent.flat()).toHaveLength(20);
    expect(await rawQuery(opts, "select seq from outbox_event where delivered_at is null")).toHaveLength(1);

    const next = recorder();
    expect(await createOutboxRelay({ db, deliver: next.deliver, batchSize: 10 }).flushNow()).toBe(30);
    expect(next.sent.flat().map((e) => e.id).slice(0, 20)).toEqual(dying.sent.flat().map((e) => e.id));
  });

  it("refuses a corrupt run loudly: the rows before it go out, it and those after it wait with the error, nothing of it is sent", async () => {
    const before = runOf(3);
    const after = runOf(2, 50);
    await insertRow(opts, `${before.idPrefix}${"0".repeat(12)}`, encodeEventRun(before));
    await insertRow(opts, `${before.idPrefix}${"1".repeat(12)}`, encodeEventRun(runOf(2)).replace("lcp-event-run:2:", "lcp-event-run:9:"));
    await insertRow(opts, `${before.idPrefix}${"2".repeat(12)}`, encodeEventRun({ ...after, idStart: 0x20000 }));
    const append = recorder();
    const relay = createOutboxRelay({ db, deliver: append.deliver, batchSize: 100 });
    await expect(relay.flushNow()).rejects.toThrow(/corrupt event run/);
    expect(append.sent.flat().map((e) => e.resource!.id)).toEqual(before.resourceIds);
    const rows = await rawQuery<{ id: string; delivered_at: unknown; attempts: number | string; last_error: string | null }>(
      opts,
      "select id, delivered_at, attempts, last_error from outbox_event order by seq",
    );
    expect(rows[0]!.delivered_at).not.toBeNull();
    for (const r of rows.slice(1)) {
      expect(r.delivered_at).toBeNull();
      expect(Number(r.attempts)).toBe(1);
      expect(r.last_error).toMatch(/EventRunError: outbox: corrupt event run/);
    }
    // Still refused on the next try; the outbox depth keeps showing what waits.
    await expect(relay.flushNow()).rejects.toThrow(EventRunError);
    expect(append.sent.flat()).toHaveLength(3);
    expect((await relay.stats()).pending).toBe(9 + 2);
  });
});
