/**
 * `details_json` (what outbox relays send) is stored and hashed exactly as sent, and the relay's
 * canonical text stores the same bytes as the equivalent Struct, so the two forms of one event's
 * details hash alike. ListEvents answers the stored text, from which anyone can recompute a hash.
 */
import { toJsonString } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { newAuditEvent, outboxDeliveryEvent } from "@lcp/persistence";
import { AuditEventSchema, type AuditEvent } from "@lcp/proto/audit/v1/audit_service_pb";
import { testDatabases } from "@lcp/testing/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ACTOR_KIND_NAMES, OUTCOME_NAMES } from "../src/validate.js";
import { chainHash } from "../src/chain/hash.js";
import { auditEvent, createAuditTestEnv, freshAuditApp, type AuditTestEnv } from "./support.js";

let env: AuditTestEnv;
beforeAll(async () => {
  env = await createAuditTestEnv();
});
afterAll(() => env.close());

// Keys out of order at both levels, so canonical sorting shows.
const DETAILS = { to: "LOCKED", from: "ACTIVE", nested: { z: 1, y: [true, null, 2.5] }, reason: "contract terminated" };
const CANONICAL = '{"from":"ACTIVE","nested":{"y":[true,null,2.5],"z":1},"reason":"contract terminated","to":"LOCKED"}';

/** Recomputes an answered event's hash from its fields alone, as an outside auditor would. */
function recompute(e: AuditEvent): string {
  return chainHash(
    {
      seq: Number(e.seq),
      id: e.id,
      occurredAt: timestampDate(e.occurredAt!),
      actorKind: ACTOR_KIND_NAMES.get(e.actor!.kind)!,
      actorId: e.actor!.id,
      actorRoles: e.actor!.roles,
      action: e.action,
      resourceType: e.resource!.type,
      resourceId: e.resource!.id,
      outcome: OUTCOME_NAMES.get(e.outcome)!,
      requestId: e.requestId,
      details: e.detailsJson,
      producer: e.producer,
    },
    Buffer.from(e.prevHash).toString("hex"),
  );
}

describe.each(testDatabases())("details_json ($name)", (tdb) => {
  const t = freshAuditApp(() => env, tdb);

  it("stores the relay's details_json and the same details as a Struct as the same canonical text", async () => {
    const recorded = newAuditEvent({ action: "license.revoke", actor: { kind: "admin", id: "carol" }, resource: { type: "license", id: "lic-1" }, outcome: "success", details: DETAILS });
    const relayed = outboxDeliveryEvent({ payload: toJsonString(AuditEventSchema, recorded) });
    expect(relayed.details).toBeUndefined();
    expect(relayed.detailsJson).toBe(CANONICAL);
    const asStruct = auditEvent({ details: DETAILS });

    const licensing = await env.serviceClient(t.app, "licensing");
    expect(await licensing.append({ events: [relayed, asStruct] })).toMatchObject({ appended: 2 });
    const [second, first] = (await env.adminClient(t.app, ["auditor"]).listEvents({})).events;
    expect(first!.detailsJson).toBe(CANONICAL);
    expect(second!.detailsJson).toBe(CANONICAL);
    expect(first!.details).toEqual(DETAILS);
    expect(second!.details).toEqual(DETAILS);
    expect(Buffer.from(first!.hash).toString("hex")).toBe(recompute(first!));
    expect(Buffer.from(second!.hash).toString("hex")).toBe(recompute(second!));
  });

  it("keeps details_json byte for byte (whitespace, key order, escapes) and the chain verifies", async () => {
    const texts = ['{ "b": 1,\n  "a": "\\u00e9" }', "{}", '{"a":{"a":{"a":[]}}}'];
    const events = texts.map((detailsJson) => Object.assign(auditEvent(), { detailsJson }));
    const signing = await env.serviceClient(t.app, "signing-keys");
    expect(await signing.append({ events })).toMatchObject({ appended: 3, headSeq: 3n });

    const admin = env.adminClient(t.app, ["auditor"]);
    const listed = (await admin.listEvents({})).events.reverse();
    expect(listed.map((e) => e.detailsJson)).toEqual(texts);
    expect(listed[0]!.details).toEqual({ b: 1, a: "é" });
    for (const e of listed) expect(Buffer.from(e.hash).toString("hex")).toBe(recompute(e));
    expect(await admin.verifyChain({})).toMatchObject({ ok: true, checked: 3n });
  });

  it("stores {} for an event with neither form", async () => {
    const licensing = await env.serviceClient(t.app, "licensing");
    await licensing.append({ events: [auditEvent()] });
    const [only] = (await env.adminClient(t.app, ["auditor"]).listEvents({})).events;
    expect(only!.detailsJson).toBe("{}");
    expect(only!.details).toEqual({});
  });
});
