/**
 * Who may call what, and the audit trail: the audit service's certificate calling Sign →
 * PermissionDenied; a support token calling CreateKey → PermissionDenied and an `authz.denied`
 * event in the outbox; no client certificate (or one from another CA) on Sign → Unauthenticated;
 * GetJwks needs nothing. Every key and CA change writes its own event in the outbox.
 */
import { Code } from "@connectrpc/connect";
import { generateKeyAndCsr } from "@lcp/pki";
import { outboxPayload } from "@lcp/persistence";
import { ActorKind, Outcome } from "@lcp/proto/audit/v1/audit_service_pb";
import { SigningKeyService } from "@lcp/proto/signing/v1/signing_key_service_pb";
import { createClient } from "@lcp/rpc";
import { testDatabases } from "@lcp/testing/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectRefusal, rowCounts, startHarness, type SigningKeysHarness } from "./support.js";

describe.each(testDatabases())("refusals and audit ($name)", (tdb) => {
  let h: SigningKeysHarness;
  beforeAll(async () => {
    h = await startHarness(tdb);
  });
  afterAll(async () => {
    await h?.close();
  });

  const outbox = async (action?: string) =>
    (await h.sql<{ payload: string; action: string }>("select action, payload from outbox_event order by seq"))
      .filter((row) => action === undefined || row.action === action)
      .map((row) => outboxPayload(row));
  const signRequest = { typ: "license+jwt", claims: { sub: "lic-1" } };

  it("refuses Sign to the audit service's certificate (PermissionDenied)", async () => {
    const audit = await h.service("audit");
    await expectRefusal(audit.sign(signRequest), Code.PermissionDenied);
    await expectRefusal(audit.issueApplianceCertificate({ deploymentId: "dep-1", csrPem: "x" }), Code.PermissionDenied);
  });

  it("refuses CreateKey to a support token (PermissionDenied), writes nothing but an authz.denied event", async () => {
    const before = await rowCounts(h);
    await expectRefusal(h.adminWith(["support"]).createKey({ reason: "not mine to do" }), Code.PermissionDenied);
    const after = await rowCounts(h);
    expect(after.signing_key).toBe(before.signing_key);
    expect(after.outbox_event).toBe(before.outbox_event! + 1);
    const denied = (await outbox("authz.denied")).at(-1)!;
    expect(denied.actor?.kind).toBe(ActorKind.ADMIN);
    expect(denied.actor?.id).toBe("test-support");
    expect(denied.actor?.roles).toEqual(["support"]);
    expect(denied.outcome).toBe(Outcome.DENIED);
    expect(denied.resource?.id).toBe("signing.v1.SigningKeyService/CreateKey");
    expect(denied.requestId).not.toBe("");
  });

  it("refuses Sign without a client certificate, or with one from another CA (Unauthenticated)", async () => {
    await expectRefusal(h.anonymous.sign(signRequest), Code.Unauthenticated);
    const foreign = await h.pki.foreignService("licensing");
    const impostor = createClient(SigningKeyService, {
      baseUrl: h.app.url,
      tls: { caPem: h.pki.ca.certPem, certPem: foreign.certPem, keyPem: foreign.keyPem },
      retries: 0,
    });
    await expectRefusal(impostor.sign(signRequest), Code.Unauthenticated);
    // An appliance certificate is no identity here either: this listener trusts no appliance CA.
    const appliance = await h.pki.appliance("dep-1");
    const box = createClient(SigningKeyService, {
      baseUrl: h.app.url,
      tls: { caPem: h.pki.ca.certPem, certPem: appliance.certPem, keyPem: appliance.keyPem },
      retries: 0,
    });
    await expectRefusal(box.getApplianceTrustBundle({}), Code.Unauthenticated);
  });

  it("serves GetJwks to anyone, and RotateApplianceCa only to super_admin", async () => {
    expect((await h.anonymous.getJwks({})).kids.length).toBeGreaterThan(0);
    await expectRefusal(h.adminWith(["support"]).rotateApplianceCa({}), Code.PermissionDenied);
    await expectRefusal(h.licensing.rotateApplianceCa({}), Code.PermissionDenied);
    await expectRefusal(h.adminWith(["auditor"]).listKeys({}), Code.PermissionDenied);
  });

  it("records every key change, CA rotation and certificate issue in the outbox, with the actor", async () => {
    const seen = (await outbox()).length;
    const created = await h.admin.createKey({ reason: "extra key" });
    const rotation = await h.admin.rotateKeys({ reason: "monthly" });
    await h.admin.retireKey({ kid: created.key!.kid, reason: "not needed" });
    await h.admin.revokeKey({ kid: rotation.retired!.kid, reason: "leaked" });
    await h.admin.rotateApplianceCa({ reason: "yearly" });
    const { csrPem } = await generateKeyAndCsr({ commonName: "dep-7", spiffeId: h.pki.applianceId("dep-7") });
    const cert = await h.licensing.issueApplianceCertificate({ deploymentId: "dep-7", csrPem });

    const events = (await outbox()).slice(seen);
    const summary = events.map((e) => `${e.action} ${e.resource?.id}`);
    expect(summary).toEqual([
      `signing.key.create ${created.key!.kid}`,
      `signing.key.retire ${rotation.retired!.kid}`,
      `signing.key.activate ${rotation.activated!.kid}`,
      `signing.key.create ${rotation.next!.kid}`,
      `signing.key.retire ${created.key!.kid}`,
      `signing.key.revoke ${rotation.retired!.kid}`,
      expect.stringMatching(/^signing\.ca\.rotate /),
      "appliance.certificate.issue dep-7",
    ]);
    // The oldest NEXT key is activated: the one published at first start, not the one just created.
    expect(rotation.activated!.kid).not.toBe(created.key!.kid);
    for (const event of events.slice(0, -1)) {
      expect(event.actor?.kind).toBe(ActorKind.ADMIN);
      expect(event.actor?.id).toBe("test-super_admin");
      expect(event.outcome).toBe(Outcome.SUCCESS);
      expect(event.requestId).not.toBe("");
    }
    const issue = events.at(-1)!;
    expect(issue.actor?.kind).toBe(ActorKind.SERVICE);
    expect(issue.actor?.id).toBe("licensing");
    expect(issue.details?.serialNumber).toBe(cert.serialNumber);
    expect(events[0]!.details?.reason).toBe("extra key");
  });

  it("recorded the first keys and CA, made at first start, as the system's doing", async () => {
    const first = (await outbox()).filter((e) => e.actor?.kind === ActorKind.SYSTEM).map((e) => e.action);
    expect(first).toEqual(["signing.key.create", "signing.key.activate", "signing.key.create", "signing.ca.rotate"]);
  });
});
