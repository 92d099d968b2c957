/**
 * CountEvents: events per time bucket (aligned to start_time, start inclusive, end exclusive) and
 * action, counted by the database, filtered by actions and resource type; every bad input is
 * InvalidArgument naming its field; only callers with audit.read may ask.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { ErrorInfoSchema } from "@lcp/proto/google/rpc/error_details_pb";
import type { CountEventsRequestSchema, CountEventsResponse } from "@lcp/proto/audit/v1/audit_service_pb";
import { errorReason } from "@lcp/rpc";
import { testDatabases } from "@lcp/testing/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditEvent, createAuditTestEnv, freshAuditApp, type AuditTestEnv } from "./support.js";

let env: AuditTestEnv;
beforeAll(async () => {
  env = await createAuditTestEnv();
});
afterAll(() => env.close());

const MIN = 60_000;
const HOUR = 60 * MIN;
// A day back, so every event is well within the allowed clock skew.
const T0 = Math.floor((Date.now() - 86_400_000) / HOUR) * HOUR;
const ts = (ms: number) => timestampFromMs(ms);
const width = (ms: number) => ({ seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 });

/** The counts as `offset-from-T0 action n` lines, offsets in minutes. */
function lines(res: CountEventsResponse): string[] {
  return res.counts.map((c) => `${(timestampDate(c.bucketStartTime!).getTime() - T0) / MIN} ${c.action} ${c.count}`);
}

describe.each(testDatabases())("CountEvents ($name)", (tdb) => {
  const fresh = freshAuditApp(() => env, tdb);

  async function seed() {
    const licensing = await env.serviceClient(fresh.app, "licensing");
    const dep = { type: "deployment", id: "dep-1" };
    await licensing.append({
      events: [
        auditEvent({ occurredAt: new Date(T0 - 1), action: "deployment.lock", resource: dep }),
        auditEvent({ occurredAt: new Date(T0), action: "deployment.lock", resource: dep }),
        auditEvent({ occurredAt: new Date(T0 + HOUR - 1), action: "deployment.lock", resource: dep }),
        auditEvent({ occurredAt: new Date(T0 + HOUR), action: "deployment.lock", resource: dep }),
        auditEvent({ occurredAt: new Date(T0 + HOUR + 5 * MIN), action: "deployment.online", resource: dep }),
        auditEvent({ occurredAt: new Date(T0 + HOUR + 6 * MIN), action: "deployment.online", resource: dep }),
        auditEvent({ occurredAt: new Date(T0 + 150 * MIN), action: "license.revoke", resource: { type: "license", id: "lic-1" } }),
        auditEvent({ occurredAt: new Date(T0 + 3 * HOUR), action: "deployment.lock", resource: dep }),
      ],
    });
  }

  it("counts per aligned bucket and action, start inclusive and end exclusive, with filters", async () => {
    await seed();
    const auditor = env.adminClient(fresh.app, ["auditor"]);
    const range = { startTime: ts(T0), endTime: ts(T0 + 3 * HOUR), bucketWidth: width(HOUR) };
    expect(lines(await auditor.countEvents(range))).toEqual(["0 deployment.lock 2", "60 deployment.lock 1", "60 deployment.online 2", "120 license.revoke 1"]);
    expect(lines(await auditor.countEvents({ ...range, actions: ["deployment.lock", "deployment.lock"] }))).toEqual(["0 deployment.lock 2", "60 deployment.lock 1"]);
    expect(lines(await auditor.countEvents({ ...range, actions: ["license.revoke", "deployment.online"] }))).toEqual(["60 deployment.online 2", "120 license.revoke 1"]);
    expect(lines(await auditor.countEvents({ ...range, resourceType: "license" }))).toEqual(["120 license.revoke 1"]);
    expect(lines(await auditor.countEvents({ ...range, resourceType: "deployment", actions: ["license.revoke"] }))).toEqual([]);
    // Buckets align to start_time, not to the clock.
    expect(lines(await auditor.countEvents({ ...range, startTime: ts(T0 + 30 * MIN) }))).toEqual([
      "30 deployment.lock 2",
      "30 deployment.online 2",
      "150 license.revoke 1",
    ]);
    // One-minute buckets, 1,000 of them at most; one day is the widest.
    const minutes = await auditor.countEvents({ startTime: ts(T0 - 500 * MIN), endTime: ts(T0 + 500 * MIN), bucketWidth: width(MIN) });
    expect(lines(minutes)).toEqual(["-1 deployment.lock 1", "0 deployment.lock 1", "59 deployment.lock 1", "60 deployment.lock 1", "65 deployment.online 1", "66 deployment.online 1", "150 license.revoke 1", "180 deployment.lock 1"]);
    const day = await auditor.countEvents({ startTime: ts(T0 - HOUR), endTime: ts(T0 + 23 * HOUR), bucketWidth: width(86_400_000) });
    expect(lines(day)).toEqual(["-60 deployment.lock 5", "-60 deployment.online 2", "-60 license.revoke 1"]);
    expect((await auditor.countEvents({ startTime: ts(T0 + 10 * HOUR), endTime: ts(T0 + 11 * HOUR), bucketWidth: width(HOUR) })).counts).toEqual([]);
  });

  it("refuses every bad input as InvalidArgument naming the field", async () => {
    const auditor = env.adminClient(fresh.app, ["auditor"]);
    const ok = { startTime: ts(T0), endTime: ts(T0 + HOUR), bucketWidth: width(MIN) };
    const refused = async (req: MessageInitShape<typeof CountEventsRequestSchema>, field: string, message: RegExp) => {
      const err = await auditor.countEvents(req).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      expect(err, `${field}: ${JSON.stringify(req, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v))}`).toBeInstanceOf(ConnectError);
      expect(Code[err!.code], err!.message).toBe("InvalidArgument");
      expect(errorReason(err)).toBe("INVALID_ARGUMENT");
      expect(err!.findDetails(ErrorInfoSchema)[0]?.metadata["field"], err!.message).toBe(field);
      expect(err!.rawMessage).toMatch(message);
    };
    expect((await auditor.countEvents(ok)).counts).toEqual([]);

    await refused({ ...ok, startTime: undefined }, "start_time", /start_time is required/);
    await refused({ ...ok, endTime: undefined }, "end_time", /end_time is required/);
    await refused({ ...ok, endTime: ok.startTime }, "end_time", /after start_time/);
    await refused({ ...ok, endTime: ts(T0 - MIN) }, "end_time", /after start_time/);
    await refused({ ...ok, startTime: { seconds: 0n, nanos: -1 } }, "start_time", /not a valid timestamp/);
    await refused({ ...ok, endTime: { seconds: 9_000_000_000_000_000n, nanos: 0 } }, "end_time", /not a valid timestamp/);

    await refused({ ...ok, bucketWidth: undefined }, "bucket_width", /required/);
    await refused({ ...ok, bucketWidth: width(MIN - 1_000) }, "bucket_width", /between 1 minute and 1 day/);
    await refused({ ...ok, bucketWidth: width(86_400_000 + 1) }, "bucket_width", /between 1 minute and 1 day/);
    await refused({ ...ok, bucketWidth: { seconds: -120n, nanos: 0 } }, "bucket_width", /between 1 minute and 1 day/);
    await refused({ ...ok, bucketWidth: { seconds: 120n, nanos: -5_000_000 } }, "bucket_width", /not a valid duration/);
    await refused({ ...ok, bucketWidth: { seconds: 120n, nanos: 1 } }, "bucket_width", /whole number of milliseconds/);
    await refused({ ...ok, bucketWidth: { seconds: 9_000_000_000_000_000_000n, nanos: 0 } }, "bucket_width", /between 1 minute and 1 day/);
    // 1,000 buckets pass; one more is refused.
    expect((await auditor.countEvents({ ...ok, endTime: ts(T0 + 1000 * MIN) })).counts).toEqual([]);
    await refused({ ...ok, endTime: ts(T0 + 1000 * MIN + 1) }, "bucket_width", /1001 buckets.*at most 1000/);
    await refused({ ...ok, startTime: ts(0), endTime: ts(Date.now()), bucketWidth: width(86_400_000) }, "bucket_width", /at most 1000/);

    await refused({ ...ok, actions: Array.from({ length: 33 }, (_, i) => `a.b${i}`) }, "actions", /at most 32/);
    expect((await auditor.countEvents({ ...ok, actions: Array.from({ length: 32 }, (_, i) => `a.b${i}`) })).counts).toEqual([]);
    for (const bad of ["", "License.Revoke", "license revoke", `a.${"b".repeat(127)}`, "a.b\u0000", "a.b\n", "a.b\u202e", ".revoke"]) {
      await refused({ ...ok, actions: ["license.revoke", bad] }, "actions", /dotted lowercase action name/);
    }
    await refused({ ...ok, resourceType: "d".repeat(65) }, "resource_type", /longer than 64/);
    for (const bad of ["dep\nloyment", "dep\u0000", "dep\u202eloyment", "dep\tx"]) await refused({ ...ok, resourceType: bad }, "resource_type", /resource_type/);
    expect((await auditor.countEvents({ ...ok, resourceType: "d".repeat(64) })).counts).toEqual([]);
  });

  it("answers callers with audit.read only", async () => {
    const req = { startTime: ts(T0), endTime: ts(T0 + HOUR), bucketWidth: width(HOUR) };
    for (const role of ["auditor", "support", "super_admin"]) expect((await env.adminClient(fresh.app, [role]).countEvents(req)).counts, role).toEqual([]);
    for (const roles of [["onboarding"], ["no-such-role"]]) {
      const err = await env.adminClient(fresh.app, roles).countEvents(req).catch((e: unknown) => ConnectError.from(e));
      expect(err instanceof ConnectError ? Code[err.code] : "answered", roles.join()).toBe("PermissionDenied");
    }
    const service = await env.serviceClient(fresh.app, "licensing");
    const err = await service.countEvents(req).catch((e: unknown) => ConnectError.from(e));
    expect(err instanceof ConnectError ? Code[err.code] : "answered").toBe("PermissionDenied");
  });
});
