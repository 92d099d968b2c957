import { Code, ConnectError } from "@connectrpc/connect";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { ActorKind, AuditService, Outcome, type AuditEvent } from "@lcp/proto/audit/v1/audit_service_pb";
import { ErrorInfoSchema } from "@lcp/proto/google/rpc/error_details_pb";
import { createClient, errorReason } from "@lcp/rpc";
import { testDatabases, type TestDatabaseOptions } from "@lcp/testing/db";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { AuditApp } from "../src/app.js";
import { auditEvent, createAuditTestEnv, type AuditTestEnv } from "./support.js";

let env: AuditTestEnv;
beforeAll(async () => {
  env = await createAuditTestEnv();
});
afterAll(() => env.close());

async function refusal(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to be refused");
}

const NOW = Date.UTC(2025, 10, 26, 12, 0, 0);
const MINUTE = 60_000;

describe.each(testDatabases())("bad inputs ($name)", (tdb) => {
  let dbOpts: TestDatabaseOptions;
  let app: AuditApp;
  beforeEach(async () => {
    dbOpts = tdb.options("audit");
    // An injected clock, so "the future" does not depend on when the test runs.
    app = await env.start(dbOpts, { now: () => new Date(NOW) });
  });
  afterEach(async () => {
    await app.close();
    await dbOpts.cleanup();
  });

  const bad: [string, (e: AuditEvent) => void, RegExp][] = [
    ["a missing id", (e) => (e.id = ""), /events\[2\]: id is required/],
    ["an id that is not a UUID", (e) => (e.id = "not-a-uuid"), /not a UUID/],
    ["a missing action", (e) => (e.action = ""), /action is required/],
    ["a missing occurred_at", (e) => (e.occurredAt = undefined), /occurred_at is required/],
    ["occurred_at beyond the clock skew", (e) => (e.occurredAt = timestampFromMs(NOW + 5 * MINUTE + 1_000)), /future/],
    ["a missing actor", (e) => (e.actor = undefined), /actor is required/],
    ["an unknown actor kind", (e) => (e.actor!.kind = 42 as ActorKind), /actor.kind/],
    ["an unspecified outcome", (e) => (e.outcome = Outcome.UNSPECIFIED), /outcome/],
    ["an unknown outcome", (e) => (e.outcome = 99 as Outcome), /outcome 99/],
    ["details over 16 KiB", (e) => (e.details = { blob: "x".repeat(16 * 1024) }), /details are \d+ bytes/],
    // details_json, the form outbox relays send: one JSON object within the same limit.
    ["details_json that is not valid JSON", (e) => (e.detailsJson = '{"reason": "cut off'), /details_json is not valid JSON/],
    ["details_json that is an array", (e) => (e.detailsJson = '["reason"]'), /details_json must be a JSON object/],
    ["details_json that is a string", (e) => (e.detailsJson = '"reason"'), /details_json must be a JSON object/],
    ["details_json that is null", (e) => (e.detailsJson = "null"), /details_json must be a JSON object/],
    ["details_json over 16 KiB", (e) => (e.detailsJson = JSON.stringify({ blob: "x".repeat(16 * 1024) })), /details_json is 16395 bytes/],
    // Multi-byte text: under the limit in UTF-16 code units, over it in UTF-8 bytes.
    ["details_json over 16 KiB in UTF-8", (e) => (e.detailsJson = JSON.stringify({ blob: "é".repeat(8 * 1024) })), /details_json is 16395 bytes/],
    ["both details and details_json", (e) => ((e.details = { reason: "a" }), (e.detailsJson = '{"reason":"a"}')), /set details or details_json, not both/],
  ];

  it.each(bad)("refuses a batch with %s (InvalidArgument naming the index) and stores none of it", async (_, spoil, message) => {
    const licensing = await env.serviceClient(app, "licensing");
    const events = [auditEvent({ occurredAt: new Date(NOW) }), auditEvent({ occurredAt: new Date(NOW) }), auditEvent({ occurredAt: new Date(NOW) })];
    spoil(events[2]!);
    const err = await refusal(licensing.append({ events }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toMatch(/events\[2\]/);
    expect(err.rawMessage).toMatch(message);
    expect(err.findDetails(ErrorInfoSchema)[0]).toMatchObject({ reason: "INVALID_ARGUMENT", metadata: { index: "2" } });
    const verified = await env.adminClient(app, ["auditor"]).verifyChain({});
    expect(verified).toMatchObject({ ok: true, headSeq: 0n });
  });

  it("accepts occurred_at within the clock skew and details of exactly 16 KiB, in either form", async () => {
    const licensing = await env.serviceClient(app, "licensing");
    // {"blob":"…"} is 11 bytes of framing.
    const details = { blob: "x".repeat(16 * 1024 - 11) };
    const res = await licensing.append({ events: [auditEvent({ occurredAt: new Date(NOW + 5 * MINUTE), details })] });
    expect(res).toMatchObject({ appended: 1 });
    const asJson = auditEvent({ occurredAt: new Date(NOW) });
    // 16,373 bytes of "é" (two each) and one "x", plus the framing: exactly 16 KiB of UTF-8.
    asJson.detailsJson = JSON.stringify({ blob: `${"é".repeat(8_186)}x` });
    expect(await licensing.append({ events: [asJson] })).toMatchObject({ appended: 1 });
  });

  it("refuses more than 1,000 events in one batch", async () => {
    const licensing = await env.serviceClient(app, "licensing");
    const events = Array.from({ length: 1_001 }, () => auditEvent({ occurredAt: new Date(NOW) }));
    const err = await refusal(licensing.append({ events }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toMatch(/at most 1000/);
  });

  it("checks ListEvents page_size, page_token and enum filters", async () => {
    const admin = env.adminClient(app, ["auditor"]);
    await (await env.serviceClient(app, "licensing")).append({ events: [auditEvent({ occurredAt: new Date(NOW) })] });
    expect((await admin.listEvents({ pageSize: 0 })).events).toHaveLength(1);
    for (const pageSize of [-1, 501, 10_000]) {
      const err = await refusal(admin.listEvents({ pageSize }));
      expect(err.code, `page_size ${pageSize}`).toBe(Code.InvalidArgument);
    }
    expect((await admin.listEvents({ pageSize: 500 })).events).toHaveLength(1);
    for (const pageToken of ["garbage", "YTEuMTAuZm9v", "!!!", Buffer.from("a1.-3.x").toString("base64url")]) {
      const err = await refusal(admin.listEvents({ pageToken }));
      expect(err.code, `page_token ${pageToken}`).toBe(Code.InvalidArgument);
      expect(errorReason(err)).toBe("PAGE_TOKEN_INVALID");
    }
    const outcome = await refusal(admin.listEvents({ outcome: 99 as Outcome }));
    expect(outcome.code).toBe(Code.InvalidArgument);
    const range = await refusal(admin.listEvents({ startTime: timestampFromMs(NOW), endTime: timestampFromMs(NOW - 1) }));
    expect(range.code).toBe(Code.InvalidArgument);
  });

  it("refuses a page token from a query with other filters", async () => {
    const licensing = await env.serviceClient(app, "licensing");
    await licensing.append({ events: [1, 2, 3].map(() => auditEvent({ occurredAt: new Date(NOW) })) });
    const admin = env.adminClient(app, ["auditor"]);
    const first = await admin.listEvents({ pageSize: 1 });
    expect(first.nextPageToken).not.toBe("");
    const err = await refusal(admin.listEvents({ pageSize: 1, pageToken: first.nextPageToken, actorId: "someone-else" }));
    expect(err.code).toBe(Code.InvalidArgument);
  });

  it("checks VerifyChain ranges", async () => {
    const admin = env.adminClient(app, ["auditor"]);
    expect((await refusal(admin.verifyChain({ fromSeq: -1n }))).code).toBe(Code.InvalidArgument);
    expect((await refusal(admin.verifyChain({ fromSeq: 5n, toSeq: 2n }))).code).toBe(Code.InvalidArgument);
  });

  it("lets support and auditor read, refuses onboarding and anonymous callers, and audits each refusal", async () => {
    expect((await env.adminClient(app, ["support"]).listEvents({})).events).toEqual([]);
    expect((await env.adminClient(app, ["auditor"]).verifyChain({})).ok).toBe(true);

    const onboarding = env.adminClient(app, ["onboarding"], "olivia");
    expect((await refusal(onboarding.listEvents({}))).code).toBe(Code.PermissionDenied);
    expect((await refusal(onboarding.verifyChain({}))).code).toBe(Code.PermissionDenied);
    // A service may append but not read the trail.
    const fleet = await env.serviceClient(app, "fleet-sweep");
    expect((await refusal(fleet.listEvents({}))).code).toBe(Code.PermissionDenied);
    const anonymous = createClient(AuditService, { baseUrl: app.url, tls: { caPem: env.pki.ca.certPem }, retries: 0 });
    expect((await refusal(anonymous.append({ events: [auditEvent()] }))).code).toBe(Code.Unauthenticated);

    const denied = (await env.adminClient(app, ["auditor"]).listEvents({ action: "authz.denied" })).events;
    expect(denied.map((e) => [e.actor?.kind, e.actor?.id, e.resource?.id, e.outcome])).toEqual([
      [ActorKind.ANONYMOUS, "-", "audit.v1.AuditService/Append", Outcome.DENIED],
      [ActorKind.SERVICE, "fleet-sweep", "audit.v1.AuditService/ListEvents", Outcome.DENIED],
      [ActorKind.ADMIN, "olivia", "audit.v1.AuditService/VerifyChain", Outcome.DENIED],
      [ActorKind.ADMIN, "olivia", "audit.v1.AuditService/ListEvents", Outcome.DENIED],
    ]);
    expect(denied[3]!.details).toMatchObject({ reason: expect.stringMatching(/audit.read/) });
  });
});
