/**
 * With AUDIT_URL set, the outbox is delivered to AuditService.Append over mTLS with this app's
 * service identity, and rows are marked delivered; without it, events wait in the outbox.
 */
import { create } from "@bufbuild/protobuf";
import { AppendResponseSchema, AuditService, type AuditEvent } from "@lcp/proto/audit/v1/audit_service_pb";
import { principalKey, type Principal } from "@lcp/rpc";
import { testDatabases } from "@lcp/testing/db";
import { startTestServer, type TestServer } from "@lcp/testing/server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHarness, type SigningKeysHarness } from "./support.js";

describe.each(testDatabases())("audit relay ($name)", (tdb) => {
  let audit: TestServer;
  let h: SigningKeysHarness;
  const received: AuditEvent[] = [];
  const callers: Principal[] = [];
  beforeAll(async () => {
    // A stand-in audit service on the real server stack: it records what Append receives and who sent it.
    audit = await startTestServer({
      name: "audit",
      register: (router) =>
        router.service(AuditService, {
          async append(req, ctx) {
            callers.push(ctx.values.get(principalKey));
            received.push(...req.events);
            return create(AppendResponseSchema, { appended: req.events.length });
          },
        }),
    });
    h = await startHarness(tdb, { auditUrl: audit.url });
  });
  afterAll(async () => {
    await h?.close();
    await audit?.close();
  });

  it("delivers the first-start events and later changes to Append as the signing-keys service", async () => {
    const rotation = await h.admin.rotateKeys({ reason: "relay test" });
    await expect.poll(() => received.map((e) => e.action), { timeout: 10_000 }).toContain("signing.key.activate");
    await expect
      .poll(() => received.filter((e) => e.resource?.id === rotation.activated!.kid).map((e) => e.action), { timeout: 10_000 })
      .toEqual(["signing.key.create", "signing.key.activate"]); // published at first start, activated now
    expect(callers.every((p) => p.kind === "service" && p.name === "signing-keys")).toBe(true);
    await expect
      .poll(async () => (await h.sql<{ n: number | string }>("select count(*) as n from outbox_event where delivered_at is null"))[0]?.n, {
        timeout: 10_000,
      })
      .toSatisfy((n) => Number(n) === 0);
    // Delivered in outbox order, each event once.
    expect(new Set(received.map((e) => e.id)).size).toBe(received.length);
  });
});
