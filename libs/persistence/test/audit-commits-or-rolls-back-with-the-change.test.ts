import { describe, expect, it } from "vitest";
import { rawQuery, testDatabases, type TestDatabaseOptions } from "@lcp/testing/db";
import { ActorKind, Outcome } from "@lcp/proto/audit/v1/audit_service_pb";
import { isUniqueViolation, newAuditEvent, OutboxEvent, outboxPayload, recordAudit, writeAuditNow, type Database } from "../src/index.js";
import { fixturePerTest } from "./helpers.js";

const event = (action = "license.revoke", now = new Date("2026-01-02T03:04:05.678Z")) =>
  newAuditEvent({
    action,
    actor: { kind: "admin", id: "alice", roles: ["support"] },
    resource: { type: "license", id: "lic-1" },
    outcome: "success",
    requestId: "req-1",
    details: { reason: "stolen", at: now },
    now,
  });

describe.each(testDatabases())("outbox ($name)", (tdb) => {
  let opts: TestDatabaseOptions;
  let db: Database;
  fixturePerTest(tdb, (o, d) => {
    opts = o;
    db = d;
  });

  it("newAuditEvent makes a UUIDv7 id and stamps occurred_at from now", () => {
    const e = event();
    expect(e.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(Number(e.occurredAt!.seconds)).toBe(Date.parse("2026-01-02T03:04:05Z") / 1000);
    expect(e.actor!.kind).toBe(ActorKind.ADMIN);
    expect(e.outcome).toBe(Outcome.SUCCESS);
    expect(e.details).toEqual({ reason: "stolen", at: "2026-01-02T03:04:05.678Z" });
  });

  it("a transaction that throws after recording leaves no outbox row", async () => {
    await expect(
      db.transactional(async (em) => {
        recordAudit(em, event());
        await em.flush(); // even flushed inside the transaction, the rollback takes it away
        throw new Error("the change failed");
      }),
    ).rejects.toThrow("the change failed");
    expect(await rawQuery(opts, "select * from outbox_event")).toHaveLength(0);
  });

  it("a committed transaction stores the event as protobuf JSON, undelivered", async () => {
    const e = event();
    await db.transactional(async (em) => {
      recordAudit(em, e);
    });
    const rows = await db.em().find(OutboxEvent, {}, { orderBy: { seq: "asc" } });
    expect(rows).toHaveLength(1);
    const row = rows[0]!;
    expect(typeof row.seq).toBe("number");
    expect(row).toMatchObject({ id: e.id, action: "license.revoke", attempts: 0, deliveredAt: null, lastError: null });
    expect(row.occurredAt.toISOString()).toBe("2026-01-02T03:04:05.678Z");
    expect(outboxPayload(row)).toEqual(e);
    const [raw] = await rawQuery<{ payload: string }>(opts, "select payload from outbox_event");
    expect(JSON.parse(raw!.payload)).toMatchObject({ id: e.id, action: "license.revoke", actor: { kind: "ACTOR_KIND_ADMIN", id: "alice" } });
  });

  it("recordAudit does not flush: nothing is written until the caller's unit of work is", async () => {
    const em = db.em();
    recordAudit(em, event());
    expect(await rawQuery(opts, "select * from outbox_event")).toHaveLength(0);
    await em.flush();
    expect(await rawQuery(opts, "select * from outbox_event")).toHaveLength(1);
  });

  it("writeAuditNow commits on its own, and the same id twice is a unique violation", async () => {
    const e = event("authz.denied");
    await writeAuditNow(db, e);
    expect(await rawQuery(opts, "select action from outbox_event")).toEqual([{ action: "authz.denied" }]);
    const err = await writeAuditNow(db, e).catch((x: unknown) => x);
    expect(isUniqueViolation(err)).toBe(true);
  });
});
