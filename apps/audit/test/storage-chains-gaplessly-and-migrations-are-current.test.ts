import { createOrm, assertMigrationsUpToDate, type Database } from "@lcp/persistence";
import { rawQuery, testDatabases, type TestDatabaseOptions } from "@lcp/testing/db";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { auditEntities } from "../src/storage/entities.js";
import { migrations as auditMigrations } from "../src/storage/schema.js";
import { createAuditStore, type AuditStore } from "../src/storage/audit-store.js";
import type { NormalizedEvent } from "../src/validate.js";

function event(i: number, over: Partial<NormalizedEvent> = {}): NormalizedEvent {
  return {
    id: `0190a000-0000-7000-8000-${i.toString(16).padStart(12, "0")}`,
    occurredAt: new Date(Date.UTC(2025, 0, 1, 0, 0, 0, i)),
    actorKind: "admin",
    actorId: "alice",
    actorRoles: ["support"],
    action: "license.revoke",
    resourceType: "license",
    resourceId: `lic-${i}`,
    outcome: "success",
    requestId: `req-${i}`,
    details: `{"reason":"test ${i}"}`,
    ...over,
  };
}

describe.each(testDatabases())("audit storage ($name)", (tdb) => {
  let opts: TestDatabaseOptions;
  let db: Database;
  let store: AuditStore;
  beforeEach(async () => {
    opts = tdb.options("audit");
    db = await createOrm({ ...opts, entities: auditEntities, migrations: auditMigrations });
    store = createAuditStore(db);
  });
  afterEach(async () => {
    await store.close();
    await db.close();
    await opts.cleanup();
  });

  it("has committed migrations that match the entities", async () => {
    await assertMigrationsUpToDate(db, auditEntities);
  });

  it("chains appends gaplessly and verifies; replays are duplicates", async () => {
    const batch = Array.from({ length: 30 }, (_, i) => event(i + 1));
    expect(await store.append("licensing", batch, new Date())).toEqual({ appended: 30, duplicates: 0, headSeq: 30 });
    expect(await store.append("licensing", batch, new Date())).toEqual({ appended: 0, duplicates: 30, headSeq: 30 });
    expect(await store.append("licensing", [event(31), event(31), event(5)], new Date())).toEqual({ appended: 1, duplicates: 2, headSeq: 31 });
    expect(await store.verify(undefined, undefined)).toEqual({ ok: true, checked: 31, headSeq: 31 });
    expect(await store.verify(10, 20)).toEqual({ ok: true, checked: 11, headSeq: 31 });
    const listed = await store.list({ resourceId: "lic-7" }, undefined, 10);
    expect(listed.map((e) => e.seq)).toEqual([7]);
    expect(listed[0]!.occurredAt.toISOString()).toBe("2025-01-01T00:00:00.007Z");
  });

  it("names a changed event, a deleted one, and a removed tail", async () => {
    await store.append("licensing", Array.from({ length: 20 }, (_, i) => event(i + 1)), new Date());
    const q = (sql: string) => rawQuery(opts, opts.databaseUrl ? sql.replace(/\?/g, "$1") : sql);
    await q(`update audit_event set details = '{"reason":"forged"}' where seq = 12`);
    expect(await store.verify(undefined, undefined)).toMatchObject({ ok: false, seq: 12, code: "HASH_MISMATCH" });
    await q("delete from audit_event where seq = 7");
    expect(await store.verify(undefined, undefined)).toMatchObject({ ok: false, seq: 7, code: "GAP" });
    expect(await store.verify(13, undefined)).toMatchObject({ ok: true, checked: 8 });
    await q("delete from audit_event where seq = 20");
    expect(await store.verify(13, undefined)).toMatchObject({ ok: false, seq: 20, code: "GAP" });
  });
});
