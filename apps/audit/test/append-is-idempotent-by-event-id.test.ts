import { Code, ConnectError } from "@connectrpc/connect";
import { testDatabases, type TestDatabaseOptions } from "@lcp/testing/db";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { AuditApp } from "../src/app.js";
import { auditEvent, createAuditTestEnv, type AuditTestEnv } from "./support.js";

let env: AuditTestEnv;
beforeAll(async () => {
  env = await createAuditTestEnv();
});
afterAll(() => env.close());

describe.each(testDatabases())("Append replay ($name)", (tdb) => {
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

  it("stores a batch appended twice once, and the chain verifies", async () => {
    const licensing = await env.serviceClient(app, "licensing");
    const batch = Array.from({ length: 50 }, (_, i) => auditEvent({ resource: { type: "license", id: `lic-${i}` } }));
    expect(await licensing.append({ events: batch })).toMatchObject({ appended: 50, duplicates: 0, headSeq: 50n });
    // The relay redelivers after a lost response: nothing new is chained.
    expect(await licensing.append({ events: batch })).toMatchObject({ appended: 0, duplicates: 50, headSeq: 50n });
    // A batch overlapping the stored ones appends only what is new.
    const more = [...batch.slice(40), auditEvent(), auditEvent()];
    expect(await licensing.append({ events: more })).toMatchObject({ appended: 2, duplicates: 10, headSeq: 52n });

    const admin = env.adminClient(app, ["auditor"]);
    expect(await admin.verifyChain({})).toMatchObject({ ok: true, checked: 52n, headSeq: 52n, firstBrokenSeq: 0n });
    const listed = await admin.listEvents({ pageSize: 500 });
    expect(listed.events).toHaveLength(52);
    expect(new Set(listed.events.map((e) => e.id)).size).toBe(52);
    // Producer comes from the certificate; seq, hashes and recorded_at from the service.
    const first = listed.events[listed.events.length - 1]!;
    expect(first).toMatchObject({ seq: 1n, producer: "licensing", id: batch[0]!.id });
    expect(Buffer.from(first.prevHash).equals(Buffer.alloc(32))).toBe(true);
    expect(first.hash).toHaveLength(32);
    expect(first.recordedAt).toBeDefined();
  });

  it("counts an id repeated inside one batch as a duplicate and ids case-insensitively", async () => {
    const fleet = await env.serviceClient(app, "fleet-sweep");
    const e = auditEvent({ action: "fleet.sweep" });
    const shouted = auditEvent({ id: e.id.toUpperCase(), action: "fleet.sweep" });
    expect(await fleet.append({ events: [e, e, shouted] })).toMatchObject({ appended: 1, duplicates: 2, headSeq: 1n });
  });

  it("refuses an admin calling Append (PermissionDenied) and audits the refusal on its own chain", async () => {
    const admin = env.adminClient(app, ["super_admin"], "mallory");
    const err = await admin.append({ events: [auditEvent()] }).catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.PermissionDenied);

    const auditor = env.adminClient(app, ["auditor"]);
    const denied = await auditor.listEvents({ action: "authz.denied" });
    expect(denied.events).toHaveLength(1);
    expect(denied.events[0]).toMatchObject({
      producer: "audit",
      actor: { id: "mallory", roles: ["super_admin"] },
      resource: { type: "rpc", id: "audit.v1.AuditService/Append" },
    });
    expect(denied.events[0]!.details).toMatchObject({ code: "permission_denied" });
    expect((await auditor.verifyChain({})).ok).toBe(true);
  });
});
