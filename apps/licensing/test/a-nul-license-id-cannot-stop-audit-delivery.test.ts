/**
 * One unauthenticated request must not stop a service's audit delivery. Over real mTLS to a real
 * licensing relaying to a real audit service, on both drivers: an Activate whose license_id is
 * "\u0000", and a call by an admin token carrying 40 role names, are recorded (sanitised: the
 * NUL escaped, the roles capped) and reach the trail; every later event follows them, and
 * VerifyChain says ok. And nothing is left quarantined: the producer never made a refusable event.
 */
import { Code } from "@connectrpc/connect";
import { toJsonString } from "@bufbuild/protobuf";
import { createAuditTestEnv, freshAuditApp, type AuditTestEnv } from "@lcp/audit/testing";
import { AUDIT_EVENT_LIMITS } from "@lcp/domain";
import { QUARANTINE_ACTION, newAuditEvent } from "@lcp/persistence";
import { AuditEventSchema, type AuditEvent } from "@lcp/proto/audit/v1/audit_service_pb";
import { OutboxService } from "@lcp/proto/ops/v1/outbox_service_pb";
import { createAdminClient } from "@lcp/rpc";
import { metricValue, scrapeMetrics } from "@lcp/testing/metrics";
import { rawQuery, testDatabases } from "@lcp/testing/db";
import { ensureDevAdminIssuer } from "@lcp/tokens";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { expectRefusal, provisionOnPrem, startHarness, type LicensingHarness } from "./support.js";

async function until<T>(read: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`condition not met in time; last value: ${JSON.stringify(v, (_, x) => (typeof x === "bigint" ? String(x) : x)).slice(0, 500)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe.each(testDatabases())("a NUL licence id cannot stop audit delivery ($name)", (tdb) => {
  let env: AuditTestEnv;
  beforeAll(async () => {
    env = await createAuditTestEnv();
  });
  afterAll(() => env.close());
  const audit = freshAuditApp(() => env, tdb);
  let licensing: LicensingHarness | undefined;
  afterEach(async () => {
    await licensing?.close();
    licensing = undefined;
  });

  /** Real licensing relaying to the real audit app, an auditor's AuditService client, and OutboxService clients. */
  async function start() {
    const pki = env.pki;
    const harness = await startHarness(tdb, { auditUrl: audit.app.url });
    const auditor = env.adminClient(audit.app, ["auditor"], "auditor");
    const trail = async (): Promise<AuditEvent[]> => (await auditor.listEvents({ pageSize: 500 })).events;

    licensing = harness;
    const dev = await ensureDevAdminIssuer(harness.db.dataDir);
    const ops = (role: string) =>
      createAdminClient(OutboxService, {
        baseUrl: harness.licensing.url,
        caPem: pki.ca.certPem,
        token: () => dev.mint({ subject: role, roles: [role], ttlSeconds: 600 }),
        retries: 0,
      });
    return { h: harness, auditor, trail, ops };
  }

  it("records the attacks sanitised, delivers every later event, and the chain verifies", async () => {
    const { h, auditor, trail, ops } = await start();
    // The attack: unauthenticated, refused — and its refusal recorded with the raw id as resource.
    await expectRefusal(
      h.anonymousAppliance.activate({ licenseId: "\u0000", licenseToken: "x", fingerprint: "f", csrPem: "c", agentVersion: "a" }),
      Code.InvalidArgument,
    );
    // A token with more role names than Append accepts, making a change that is recorded.
    const manyRoles = ["onboarding", ...Array.from({ length: 39 }, (_, i) => `role-${i}`)];
    const crowd = await h.admin(...manyRoles).provisionDeployment({ name: "crowd", customer: "c", kind: 1, entitlements: [] });
    // A later, ordinary change: it must reach the trail behind the attacks.
    const later = await provisionOnPrem(h);

    const events = await until(trail, (es) => es.some((e) => e.resource?.id === later.deployment.id));
    const nul = events.find((e) => e.action === "license.activate");
    expect(nul?.resource?.id).toBe("\\u0000");
    const crowdEvent = events.find((e) => e.resource?.id === crowd.deployment!.id);
    expect(crowdEvent?.actor?.roles).toHaveLength(AUDIT_EVENT_LIMITS.roles);
    expect(await auditor.verifyChain({})).toMatchObject({ ok: true });
    // Every event licensing wrote went out: nothing pending, nothing set aside.
    const pending = await h.sql<{ n: number | string }>("select count(*) as n from outbox_event where delivered_at is null");
    expect(Number(pending[0]!.n)).toBe(0);

    // The admin RPC answers on licensing, under audit.read, and lists nothing quarantined.
    expect((await ops("auditor").listQuarantinedEvents({})).events).toEqual([]);
    await expectRefusal(ops("onboarding").listQuarantinedEvents({}), Code.PermissionDenied);
  });

  it("an event audit refuses (stuck there before producers sanitised) is quarantined: later events flow, it is listed and raises an alarm", async () => {
    const { h, auditor, trail, ops } = await start();
    // Written raw, past the sanitiser, as an outbox filled by an older release may hold it.
    const stuck = newAuditEvent({ action: "license.activate", actor: { kind: "anonymous", id: "-" }, resource: { type: "license", id: "x" }, outcome: "denied" });
    stuck.resource!.id = "\u0000";
    await rawQuery(
      h.db,
      `insert into outbox_event (id, action, occurred_at, payload, delivered_at, attempts, last_error) values (${h.db.databaseUrl ? "$1, $2, $3, $4" : "?, ?, ?, ?"}, null, 0, null)`,
      [stuck.id, stuck.action, h.db.databaseUrl ? new Date() : Date.now(), toJsonString(AuditEventSchema, stuck)],
    );
    const later = await provisionOnPrem(h);

    const events = await until(trail, (es) => es.some((e) => e.action === QUARANTINE_ACTION) && es.some((e) => e.resource?.id === later.deployment.id));
    expect(events.some((e) => e.id === stuck.id)).toBe(false);
    const alarm = events.find((e) => e.action === QUARANTINE_ACTION)!;
    expect(alarm.resource?.id).toBe(stuck.id);
    expect(JSON.parse(alarm.detailsJson)).toMatchObject({ action: "license.activate", reason: expect.stringContaining("NUL") });
    expect(await auditor.verifyChain({})).toMatchObject({ ok: true });

    const listed = await ops("auditor").listQuarantinedEvents({});
    expect(listed.events).toEqual([expect.objectContaining({ id: stuck.id, action: "license.activate", eventCount: 1, reason: expect.stringContaining("invalid_argument") })]);
    expect(metricValue(await scrapeMetrics(h.licensing.url, h.pki.ca.certPem), "licensing_outbox_quarantined_events")).toBe(1);
  });
});
