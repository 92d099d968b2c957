import { ActorKind, Outcome } from "@lcp/proto/audit/v1/audit_service_pb";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { testDatabases, type TestDatabaseOptions } from "@lcp/testing/db";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { AuditApp } from "../src/app.js";
import { auditEvent, createAuditTestEnv, type AuditTestEnv } from "./support.js";

let env: AuditTestEnv;
beforeAll(async () => {
  env = await createAuditTestEnv();
});
afterAll(() => env.close());

const T0 = Date.UTC(2025, 5, 1, 12, 0, 0);

describe.each(testDatabases())("ListEvents ($name)", (tdb) => {
  let dbOpts: TestDatabaseOptions;
  let app: AuditApp;
  beforeEach(async () => {
    dbOpts = tdb.options("audit");
    app = await env.start(dbOpts);
  });
  afterEach(async () => {
    await app.close();
    await dbOpts.cleanup();
  });

  it("finds a license.revoke with its actor, resource and reason", async () => {
    const licensing = await env.serviceClient(app, "licensing");
    await licensing.append({
      events: [
        auditEvent({ action: "license.issue", resource: { type: "license", id: "lic-42" } }),
        auditEvent({
          action: "license.revoke",
          actor: { kind: ActorKind.ADMIN, id: "carol", roles: ["support"] },
          resource: { type: "license", id: "lic-42" },
          requestId: "req-revoke-1",
          details: { reason: "contract terminated", ticket: "OPS-7" },
        }),
        auditEvent({ action: "deployment.lock", resource: { type: "deployment", id: "dep-42" }, actor: { kind: ActorKind.SYSTEM, id: "licensing", roles: [] } }),
      ],
    });
    const res = await env.adminClient(app, ["support"]).listEvents({ action: "license.revoke" });
    expect(res.events).toHaveLength(1);
    expect(res.nextPageToken).toBe("");
    expect(res.events[0]).toMatchObject({
      seq: 2n,
      action: "license.revoke",
      actor: { kind: ActorKind.ADMIN, id: "carol", roles: ["support"] },
      resource: { type: "license", id: "lic-42" },
      outcome: Outcome.SUCCESS,
      requestId: "req-revoke-1",
      producer: "licensing",
      details: { reason: "contract terminated", ticket: "OPS-7" },
    });
    const byResource = await env.adminClient(app, ["auditor"]).listEvents({ resourceType: "license", resourceId: "lic-42" });
    expect(byResource.events.map((e) => e.action)).toEqual(["license.revoke", "license.issue"]);
  });

  it("walks 250 events newest first with page_size 7, no gaps or repeats, while new events arrive", async () => {
    const licensing = await env.serviceClient(app, "licensing");
    const events = Array.from({ length: 250 }, (_, i) => auditEvent({ resource: { type: "license", id: `lic-${i}` } }));
    for (let i = 0; i < events.length; i += 50) await licensing.append({ events: events.slice(i, i + 50) });

    const admin = env.adminClient(app, ["auditor"]);
    const seqs: bigint[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const page = await admin.listEvents({ pageSize: 7, pageToken });
      expect(page.events.length).toBeLessThanOrEqual(7);
      seqs.push(...page.events.map((e) => e.seq));
      pageToken = page.nextPageToken;
      // Appends between pages must not shift the walk (keyset on seq, not an offset).
      if (++pages === 3) await licensing.append({ events: [auditEvent(), auditEvent()] });
    } while (pageToken);
    expect(pages).toBe(Math.ceil(250 / 7));
    expect(seqs).toEqual(Array.from({ length: 250 }, (_, i) => BigInt(250 - i)));
  });

  it("filters by outcome, actor and time range", async () => {
    const fleet = await env.serviceClient(app, "fleet-sweep");
    const at = (min: number) => new Date(T0 + min * 60_000);
    await fleet.append({
      events: [
        auditEvent({ occurredAt: at(0), outcome: Outcome.SUCCESS, actor: { id: "alice" } }),
        auditEvent({ occurredAt: at(10), outcome: Outcome.DENIED, actor: { id: "bob" }, action: "authz.denied" }),
        auditEvent({ occurredAt: at(20), outcome: Outcome.FAILURE, actor: { id: "alice" } }),
        auditEvent({ occurredAt: at(30), outcome: Outcome.DENIED, actor: { id: "alice" }, action: "authz.denied" }),
      ],
    });
    const admin = env.adminClient(app, ["auditor"]);
    const seqsOf = async (req: Parameters<typeof admin.listEvents>[0]) => (await admin.listEvents(req)).events.map((e) => Number(e.seq));
    expect(await seqsOf({ outcome: Outcome.DENIED })).toEqual([4, 2]);
    expect(await seqsOf({ actorId: "alice" })).toEqual([4, 3, 1]);
    expect(await seqsOf({ actorId: "alice", outcome: Outcome.DENIED })).toEqual([4]);
    // start inclusive, end exclusive.
    expect(await seqsOf({ startTime: timestampFromMs(at(10).getTime()), endTime: timestampFromMs(at(30).getTime()) })).toEqual([3, 2]);
    expect(await seqsOf({ startTime: timestampFromMs(at(25).getTime()) })).toEqual([4]);
    expect(await seqsOf({ endTime: timestampFromMs(at(5).getTime()) })).toEqual([1]);
    expect(await seqsOf({ action: "license.nothing" })).toEqual([]);
    // Filters hold across pages too.
    const first = await admin.listEvents({ actorId: "alice", pageSize: 2 });
    expect(first.events.map((e) => Number(e.seq))).toEqual([4, 3]);
    const second = await admin.listEvents({ actorId: "alice", pageSize: 2, pageToken: first.nextPageToken });
    expect(second.events.map((e) => Number(e.seq))).toEqual([1]);
    expect(second.nextPageToken).toBe("");
  });
});
