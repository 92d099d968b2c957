/**
 * The relay sends each event's details as `details_json`, the canonical JSON of the Struct the
 * producer recorded (the form the audit service decodes and checks cheaply, and hashes like the
 * Struct); events recorded without details go without; an event with both forms is refused when
 * recorded, so it can never stall the outbox behind a batch Append would refuse.
 */
import { describe, expect, it } from "vitest";
import { testDatabases, type TestDatabaseOptions } from "@lcp/testing/db";
import type { AuditEvent } from "@lcp/proto/audit/v1/audit_service_pb";
import { canonicalJson, createOutboxRelay, newAuditEvent, outboxPayload, recordAudit, OutboxEvent, type Database } from "../src/index.js";
import { fixturePerTest } from "./helpers.js";

const revoke = (details?: Record<string, unknown>) =>
  newAuditEvent({ action: "license.revoke", actor: { kind: "admin", id: "carol" }, resource: { type: "license", id: "lic-1" }, outcome: "success", details });

describe("canonicalJson", () => {
  it("sorts keys recursively, keeps array order, writes no whitespace and NaN as null", () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: null }, e: Number.NaN, u: undefined })).toBe('{"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1,"e":null}');
  });
});

describe.each(testDatabases())("relay details form ($name)", (tdb) => {
  let opts: TestDatabaseOptions;
  let db: Database;
  fixturePerTest(tdb, (o, d) => {
    opts = o;
    db = d;
  });

  it("delivers details as canonical details_json and no Struct, while the outbox keeps the recorded form", async () => {
    const withDetails = revoke({ to: "LOCKED", from: "ACTIVE", why: { ticket: "OPS-7", at: new Date("2026-01-02T03:04:05.678Z") } });
    const without = revoke();
    await db.transactional(async (em) => {
      recordAudit(em, withDetails);
      recordAudit(em, without);
    });
    const sent: AuditEvent[] = [];
    const relay = createOutboxRelay({ db, deliver: async (events) => void sent.push(...events) });
    expect(await relay.flushNow()).toBe(2);

    expect(sent.map((e) => [e.id, e.details, e.detailsJson])).toEqual([
      [withDetails.id, undefined, '{"from":"ACTIVE","to":"LOCKED","why":{"at":"2026-01-02T03:04:05.678Z","ticket":"OPS-7"}}'],
      [without.id, undefined, ""],
    ]);
    // What producers' own tests and tools read is unchanged: the Struct as recorded.
    const rows = await db.em().find(OutboxEvent, {}, { orderBy: { seq: "asc" } });
    expect(outboxPayload(rows[0]!).details).toEqual(withDetails.details);
  });

  it("refuses to record an event with both details and detailsJson", async () => {
    const both = revoke({ reason: "a" });
    both.detailsJson = '{"reason":"a"}';
    await expect(db.transactional(async (em) => void recordAudit(em, both))).rejects.toThrow(/not both/);
    expect(await db.em().count(OutboxEvent, {})).toBe(0);
  });
});
