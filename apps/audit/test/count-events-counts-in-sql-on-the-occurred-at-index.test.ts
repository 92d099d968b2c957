/**
 * The CountEvents statement on both drivers: its counts equal a count of the same events made
 * here, for ranges and bucket widths that do and do not line up with the events (millisecond
 * edges included), and a narrow range reads the `occurred_at` index rather than the whole log.
 * The index comes from the committed migrations, which match the entities.
 */
import { assertMigrationsUpToDate, createOrm, type Database } from "@lcp/persistence";
import { rawQuery, testDatabases, type TestDatabaseOptions } from "@lcp/testing/db";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createAuditStore, type AuditStore, type BucketCount, type CountQuery } from "../src/storage/audit-store.js";
import { auditEntities } from "../src/storage/entities.js";
import { countStatement } from "../src/storage/rows.js";
import { migrations as auditMigrations } from "../src/storage/schema.js";
import type { NormalizedEvent } from "../src/validate.js";

const ACTIONS = ["deployment.lock", "deployment.online", "license.revoke"] as const;
const T0 = Date.UTC(2025, 0, 1);
const MIN = 60_000;

/** Event `i`: one every 7 minutes and 13 ms or so, actions and resource types in turn. */
function event(i: number): NormalizedEvent {
  return {
    id: `0190a000-0000-7000-8000-${i.toString(16).padStart(12, "0")}`,
    occurredAt: new Date(T0 + i * 7 * MIN + (i % 5) * 13),
    actorKind: "system",
    actorId: "licensing",
    actorRoles: [],
    action: ACTIONS[i % 3]!,
    resourceType: i % 4 === 0 ? "license" : "deployment",
    resourceId: `r-${i}`,
    outcome: "success",
    requestId: `req-${i}`,
    details: "{}",
  };
}

/** The same counts, made here. */
function expected(events: readonly NormalizedEvent[], q: CountQuery): BucketCount[] {
  const counts = new Map<string, BucketCount>();
  for (const e of events) {
    const t = e.occurredAt.getTime();
    if (t < q.start.getTime() || t >= q.end.getTime()) continue;
    if (q.actions.length > 0 && !q.actions.includes(e.action)) continue;
    if (q.resourceType && e.resourceType !== q.resourceType) continue;
    const bucket = Math.floor((t - q.start.getTime()) / q.bucketMs);
    const key = `${bucket} ${e.action}`;
    const c = counts.get(key);
    counts.set(key, { bucket, action: e.action, count: (c?.count ?? 0) + 1 });
  }
  return sorted([...counts.values()]);
}

const sorted = (c: BucketCount[]) => [...c].sort((a, b) => a.bucket - b.bucket || a.action.localeCompare(b.action));

describe.each(testDatabases())("CountEvents storage ($name)", (tdb) => {
  let opts: TestDatabaseOptions;
  let db: Database;
  let store: AuditStore;
  const events = Array.from({ length: 3_000 }, (_, i) => event(i + 1));
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

  it("counts what a count of the same events makes, edges included, and the migrations are current", async () => {
    await assertMigrationsUpToDate(db, auditEntities);
    for (let i = 0; i < events.length; i += 1_000) await store.append("licensing", events.slice(i, i + 1_000), new Date());
    const queries: CountQuery[] = [
      { actions: [], start: new Date(T0), end: new Date(T0 + 1_000 * 60 * MIN), bucketMs: 60 * MIN },
      // Starts on an event to the millisecond, ends on another: start inclusive, end exclusive.
      { actions: [], start: events[10]!.occurredAt, end: events[400]!.occurredAt, bucketMs: 7 * MIN },
      { actions: [], start: new Date(events[10]!.occurredAt.getTime() + 1), end: new Date(events[400]!.occurredAt.getTime() + 1), bucketMs: 7 * MIN },
      { actions: ["license.revoke"], start: new Date(T0 + 12_345), end: new Date(T0 + 20 * 86_400_000), bucketMs: 86_400_000 },
      { actions: ["deployment.lock", "deployment.online"], resourceType: "license", start: new Date(T0 - 5 * MIN), end: new Date(T0 + 999 * 17 * MIN), bucketMs: 17 * MIN + 1 },
      { actions: [], resourceType: "nothing", start: new Date(T0), end: new Date(T0 + 60 * MIN), bucketMs: MIN },
    ];
    for (const q of queries) {
      const got = sorted(await store.count(q));
      expect(got, JSON.stringify(q)).toEqual(expected(events, q));
    }
    expect((await store.count(queries[0]!)).reduce((n, c) => n + c.count, 0)).toBe(events.filter((e) => e.occurredAt.getTime() < T0 + 1_000 * 60 * MIN).length);
  });

  it("reads a narrow range through the occurred_at index", async () => {
    for (let i = 0; i < events.length; i += 1_000) await store.append("licensing", events.slice(i, i + 1_000), new Date());
    const pg = Boolean(opts.databaseUrl);
    if (pg) await rawQuery(opts, "analyze audit_event");
    for (const q of [
      { actions: [], start: new Date(T0 + 100 * MIN), end: new Date(T0 + 160 * MIN), bucketMs: MIN },
      { actions: [], resourceType: "license", start: new Date(T0 + 100 * MIN), end: new Date(T0 + 160 * MIN), bucketMs: 10 * MIN },
      { actions: ["deployment.lock", "license.revoke"], resourceType: "deployment", start: new Date(T0 + 100 * MIN), end: new Date(T0 + 160 * MIN), bucketMs: 10 * MIN },
    ] satisfies CountQuery[]) {
      const { sql, params } = countStatement(q, pg ? "postgresql" : "sqlite");
      const plan = await rawQuery<Record<string, unknown>>(opts, `${pg ? "explain" : "explain query plan"} ${sql}`, params);
      expect(JSON.stringify(plan)).toContain("audit_event_occurred_at_index");
    }
  });
});
