/**
 * Every text field comes back from ListEvents exactly as appended, and the chain verifies, on
 * both drivers — in particular through the PostgreSQL store's hand-written array literals
 * (quotes, backslashes, JSON escapes, braces, commas, "NULL", empty strings, non-ASCII).
 */
import { testDatabases } from "@lcp/testing/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditEvent, createAuditTestEnv, freshAuditApp, type AuditTestEnv } from "./support.js";

let env: AuditTestEnv;
beforeAll(async () => {
  env = await createAuditTestEnv();
});
afterAll(() => env.close());

const AWKWARD = ['say "hi"', "back\\slash", "\\n is not a newline", "a\nb\tc", "{a,b}", "NULL", "", "é ü 😀", '\\"', "x\\", "\u0001\u001f"];

describe.each(testDatabases())("text fields ($name)", (tdb) => {
  const t = freshAuditApp(() => env, tdb);

  it("come back byte for byte, whichever characters they hold, and the chain verifies", async () => {
    const events = AWKWARD.map((text, i) => {
      const e = auditEvent({ actor: { id: text, roles: [text, "support"] }, resource: { type: "license", id: text }, requestId: text });
      e.detailsJson = i % 2 ? JSON.stringify({ text }) : `{"text": ${JSON.stringify(text)},\n "i": ${i}}`;
      return e;
    });
    // Control characters are JSON escapes with no array-literal equivalent: batches without them
    // take the store's JSON.stringify path, batches with them the hand-quoted one.
    const control = (e: (typeof events)[number]) => /[\u0000-\u001f]/.test(`${e.actor?.id}${e.detailsJson}`);
    const licensing = await env.serviceClient(t.app, "licensing");
    await licensing.append({ events: events.filter((e) => !control(e)) });
    await licensing.append({ events: events.filter(control) });
    const appended = [...events.filter((e) => !control(e)), ...events.filter(control)];

    const admin = env.adminClient(t.app, ["auditor"]);
    const listed = (await admin.listEvents({ pageSize: 100 })).events.reverse();
    expect(listed.map((e) => [e.actor?.id, e.actor?.roles, e.resource?.id, e.requestId, e.detailsJson])).toEqual(
      appended.map((e) => [e.actor?.id, e.actor?.roles, e.resource?.id, e.requestId, e.detailsJson]),
    );
    expect(await admin.verifyChain({})).toMatchObject({ ok: true, checked: BigInt(events.length) });
  });
});
