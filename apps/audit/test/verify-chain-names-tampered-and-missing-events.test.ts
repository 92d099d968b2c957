import { rawQuery, testDatabases, type TestDatabaseOptions } from "@lcp/testing/db";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { AuditApp } from "../src/app.js";
import { chainHash } from "../src/chain/hash.js";
import { createAuditStore } from "../src/storage/audit-store.js";
import { auditEvent, createAuditTestEnv, type AuditTestEnv } from "./support.js";

let env: AuditTestEnv;
beforeAll(async () => {
  env = await createAuditTestEnv();
});
afterAll(() => env.close());

describe.each(testDatabases())("VerifyChain after tampering ($name)", (tdb) => {
  let dbOpts: TestDatabaseOptions;
  let app: AuditApp;
  const sql = (text: string, params: unknown[] = []) =>
    // rawQuery takes the driver's own placeholders.
    rawQuery(dbOpts, dbOpts.databaseUrl ? text.replace(/\?/g, (() => { let n = 0; return () => `$${++n}`; })()) : text, params);

  beforeEach(async () => {
    dbOpts = tdb.options("audit");
    app = await env.start(dbOpts);
    const signing = await env.serviceClient(app, "signing-keys");
    const events = Array.from({ length: 40 }, (_, i) =>
      auditEvent({ action: "signing.key.create", resource: { type: "signing_key", id: `k${i}` }, details: { alg: "EdDSA", n: i } }),
    );
    await signing.append({ events });
  });
  afterEach(async () => {
    await app.close();
    await dbOpts.cleanup();
  });

  it("answers ok for an untouched chain, in full and over a range", async () => {
    const admin = env.adminClient(app, ["support"]);
    expect(await admin.verifyChain({})).toMatchObject({ ok: true, checked: 40n, headSeq: 40n, reason: "" });
    expect(await admin.verifyChain({ fromSeq: 11n, toSeq: 20n })).toMatchObject({ ok: true, checked: 10n });
  });

  it("names the seq whose details were changed in the database", async () => {
    await sql(`update audit_event set details = ? where seq = ?`, ['{"alg":"none","n":17}', 17]);
    const admin = env.adminClient(app, ["auditor"]);
    const res = await admin.verifyChain({});
    expect(res).toMatchObject({ ok: false, firstBrokenSeq: 17n, checked: 17n });
    expect(res.reason).toMatch(/hash mismatch/);
    // Before the change, the range still verifies.
    expect((await admin.verifyChain({ toSeq: 16n })).ok).toBe(true);
  });

  it("names the link after an event whose hash the forger recomputed", async () => {
    // A forger who rewrites seq 9 and recomputes its hash makes seq 9 self-consistent, but
    // seq 10 still links to the old hash.
    const store = createAuditStore(app.db);
    const [row] = await store.list({}, 10, 1);
    await store.close();
    const forged = { ...row!, details: '{"alg":"none","n":8}' };
    await sql(`update audit_event set details = ?, hash = ? where seq = ?`, [forged.details, chainHash(forged, forged.prevHash), 9]);
    const res = await env.adminClient(app, ["auditor"]).verifyChain({});
    expect(res).toMatchObject({ ok: false, firstBrokenSeq: 10n, reason: "prev_hash does not match seq 9" });
  });

  it("names the gap left by a deleted row", async () => {
    await sql(`delete from audit_event where seq = ?`, [23]);
    const res = await env.adminClient(app, ["auditor"]).verifyChain({});
    expect(res).toMatchObject({ ok: false, firstBrokenSeq: 23n });
    expect(res.reason).toMatch(/gap/);
  });

  it("names the gap left by a deleted last event", async () => {
    await sql(`delete from audit_event where seq = ?`, [40]);
    const res = await env.adminClient(app, ["auditor"]).verifyChain({});
    expect(res).toMatchObject({ ok: false, firstBrokenSeq: 40n });
    expect(res.reason).toMatch(/gap/);
  });
});
