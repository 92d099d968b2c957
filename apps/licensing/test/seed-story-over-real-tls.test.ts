/**
 * The seed's story over real TLS/mTLS with a real signing-keys: provision (auto-issue) → activate
 * → ACTIVE; another box refused and audited; subscription INVALID → SUSPENDED, VALID → ACTIVE;
 * revoke → LOCKED(REVOKED) and activation refused for ever; on a fresh licence, rebind → the new
 * box activates and the old box's certificate is refused on an mTLS call.
 */
import { Code } from "@connectrpc/connect";
import { testDatabases } from "@lcp/testing/db";
import { verifyLeaseToken, verifyLicenseToken } from "@lcp/tokens";
import {
  DeploymentState,
  DirectiveType,
  LicenseStatus,
  LockReason,
  SubscriptionStatus,
} from "@lcp/proto/licensing/v1/types_pb";
import { X509Certificate } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  activateBox,
  auditEvents,
  expectRefusal,
  newBox,
  provisionOnPrem,
  startHarness,
  TEST_ISSUER,
  type LicensingHarness,
} from "./support.js";

describe.each(testDatabases())("the seed's story ($name)", (tdb) => {
  let h: LicensingHarness;
  beforeAll(async () => {
    h = await startHarness(tdb);
  });
  afterAll(async () => {
    await h?.close();
  });

  it("provisions with an auto-issued licence, activates, suspends, reactivates and revokes for ever", async () => {
    const support = h.admin("support");
    const { deployment, license } = await provisionOnPrem(h);
    expect(deployment.state).toBe(DeploymentState.PENDING);
    expect(license.status).toBe(LicenseStatus.ISSUED);
    expect(license.deploymentId).toBe(deployment.id);

    // The licence is a signed token (signed by a control-plane signing key).
    const jwks = JSON.parse((await h.signing.getJwks({})).jwksJson);
    const verified = await verifyLicenseToken(license.token, { jwks, issuer: TEST_ISSUER });
    expect(verified.ok && verified.claims.sub).toBe(license.id);
    expect(verified.ok && verified.claims.dep).toBe(deployment.id);

    // The appliance activates on first run: certificate for its deployment, a lease, the JWKS.
    const box = await newBox(h, deployment.id, "serial-A1-mainboard-0001");
    const activation = await activateBox(h, license, box);
    expect(activation.deploymentId).toBe(deployment.id);
    expect(activation.state).toBe(DeploymentState.ACTIVE);
    const cert = new X509Certificate(activation.certificatePem);
    expect(cert.subjectAltName).toContain(`spiffe://${h.pki.trustDomain}/appliance/${deployment.id}`);
    expect(activation.certificateChainPem.length).toBeGreaterThan(0);
    const lease = await verifyLeaseToken(activation.leaseToken, { jwks: JSON.parse(activation.jwksJson), issuer: TEST_ISSUER });
    expect(lease.ok).toBe(true);
    if (lease.ok) {
      expect(lease.claims.st).toBe("ACTIVE");
      expect(lease.claims.sub).toBe(license.id);
      expect(lease.claims.seq).toBe(1);
    }
    expect(activation.settings?.graceWindow?.seconds).toBe(14n * 86_400n);

    let got = (await support.getDeployment({ deploymentId: deployment.id })).deployment!;
    expect(got.state).toBe(DeploymentState.ACTIVE);
    const activated = (await support.getLicense({ licenseId: license.id })).license!;
    expect(activated.status).toBe(LicenseStatus.ACTIVATED);
    // Only the hash of the fingerprint is kept.
    expect(activated.fingerprintHash).toMatch(/^[0-9a-f]{64}$/);
    const stored = await h.sql<{ fingerprint_hash: string }>(`select fingerprint_hash from license where id = '${license.id}'`);
    expect(JSON.stringify(stored)).not.toContain("serial-A1");

    // The same box again (reinstall) gets a new certificate.
    const again = await activateBox(h, license, await newBox(h, deployment.id, box.fingerprint));
    expect(new X509Certificate(again.certificatePem).serialNumber).not.toBe(cert.serialNumber);

    // A second box with another fingerprint is refused and audited DENIED.
    const thief = await newBox(h, deployment.id, "some-other-box");
    await expectRefusal(activateBox(h, license, thief), Code.FailedPrecondition, "FINGERPRINT_MISMATCH");
    const denied = (await auditEvents(h)).filter((e) => e.action === "license.activate" && e.outcome === "OUTCOME_DENIED");
    expect(denied.some((e) => e.details["code"] === "FINGERPRINT_MISMATCH")).toBe(true);

    // An invalid subscription drives it to suspended; restoring it reactivates.
    got = (await support.setSubscriptionStatus({ deploymentId: deployment.id, status: SubscriptionStatus.INVALID, reason: "unpaid" })).deployment!;
    expect(got.state).toBe(DeploymentState.SUSPENDED);
    expect(got.subscriptionStatus).toBe(SubscriptionStatus.INVALID);
    got = (await support.setSubscriptionStatus({ deploymentId: deployment.id, status: SubscriptionStatus.VALID, reason: "paid" })).deployment!;
    expect(got.state).toBe(DeploymentState.ACTIVE);

    // Directives for the box (pushed when connected, kept for redelivery): SUSPEND then REACTIVATE, each with a lease.
    const directives = await h.sql<{ type: string; payload: string }>(
      `select type, payload from directive where deployment_id = '${deployment.id}' order by id`,
    );
    expect(directives.map((d) => d.type)).toEqual(["SUSPEND", "RENEW_LEASE", "REACTIVATE", "RENEW_LEASE"]);
    const suspendLease = JSON.parse(directives[0]!.payload).leaseToken as string;
    const suspended = await verifyLeaseToken(suspendLease, { jwks, issuer: TEST_ISSUER });
    expect(suspended.ok && suspended.claims.st).toBe("SUSPENDED");
    expect(suspended.ok && suspended.claims.seq).toBeGreaterThan(1);

    // Revoke locks the deployment and denies activation from then on.
    const revoked = await support.revokeLicense({ licenseId: license.id, reason: "reported stolen" });
    expect(revoked.license!.status).toBe(LicenseStatus.REVOKED);
    expect(revoked.license!.revokeReason).toBe("reported stolen");
    expect(revoked.deployment!.state).toBe(DeploymentState.LOCKED);
    expect(revoked.deployment!.lockReason).toBe(LockReason.REVOKED);
    await expectRefusal(activateBox(h, license, await newBox(h, deployment.id, box.fingerprint)), Code.FailedPrecondition, "LICENSE_REVOKED");
    await expectRefusal(activateBox(h, license, await newBox(h, deployment.id, "fresh-box")), Code.FailedPrecondition, "LICENSE_REVOKED");
    // The box's certificate is refused from now on.
    await expectRefusal(h.applianceClient(box).sendHeartbeat({ licenseId: license.id, fingerprint: box.fingerprint }), Code.Unauthenticated);
    got = (await support.getDeployment({ deploymentId: deployment.id })).deployment!;
    expect([got.state, got.lockReason]).toEqual([DeploymentState.LOCKED, LockReason.REVOKED]);
    const lock = await h.sql<{ type: string }>(`select type from directive where deployment_id = '${deployment.id}' order by id desc`);
    expect(lock[0]?.type).toBe("LOCK");
    expect(DirectiveType[DirectiveType.LOCK]).toBe("LOCK");

    const actions = (await auditEvents(h)).filter((e) => e.outcome === "OUTCOME_SUCCESS").map((e) => e.action);
    for (const action of [
      "deployment.provision",
      "license.issue",
      "license.activate",
      "subscription.update",
      "deployment.suspend",
      "deployment.reactivate",
      "license.revoke",
      "deployment.lock",
    ]) {
      expect(actions, action).toContain(action);
    }
  });

  it("rebinds a fresh licence: the new box activates, the old box's certificate is refused over mTLS", async () => {
    const support = h.admin("support");
    const { deployment, license } = await provisionOnPrem(h);
    const oldBox = await newBox(h, deployment.id, "old-mainboard");
    await activateBox(h, license, oldBox);

    // While bound, the old box is a valid appliance identity: its unary heartbeat is answered ACTIVE.
    expect((await h.applianceClient(oldBox).sendHeartbeat({ licenseId: license.id, fingerprint: oldBox.fingerprint })).state).toBe(DeploymentState.ACTIVE);

    const rebound = await support.rebindLicense({ licenseId: license.id, newFingerprint: "new-mainboard", reason: "mainboard replaced" });
    expect(rebound.license!.fingerprintHash).not.toBe("");
    expect((await support.getDeployment({ deploymentId: deployment.id })).deployment!.state).toBe(DeploymentState.PENDING);

    // The old box: its certificate is refused from now on, and it can no longer activate.
    await expectRefusal(h.applianceClient(oldBox).sendHeartbeat({ licenseId: license.id, fingerprint: oldBox.fingerprint }), Code.Unauthenticated);
    await expectRefusal(activateBox(h, license, await newBox(h, deployment.id, "old-mainboard")), Code.FailedPrecondition, "FINGERPRINT_MISMATCH");

    // The new box activates and is a valid identity.
    const newBoxA = await newBox(h, deployment.id, "new-mainboard");
    const activation = await activateBox(h, license, newBoxA);
    expect(activation.state).toBe(DeploymentState.ACTIVE);
    expect((await h.applianceClient(newBoxA).sendHeartbeat({ licenseId: license.id, fingerprint: newBoxA.fingerprint })).state).toBe(DeploymentState.ACTIVE);
    expect((await support.getDeployment({ deploymentId: deployment.id })).deployment!.state).toBe(DeploymentState.ACTIVE);

    const rebind = (await auditEvents(h)).filter((e) => e.action === "license.rebind" && e.outcome === "OUTCOME_SUCCESS");
    expect(rebind.map((e) => e.resourceId)).toContain(license.id);

    // An empty new fingerprint unbinds: the next box to activate binds, the previous one is refused.
    await support.rebindLicense({ licenseId: license.id, newFingerprint: "", reason: "box sent for repair; replacement unknown" });
    expect((await support.getLicense({ licenseId: license.id })).license!.fingerprintHash).toBe("");
    await expectRefusal(h.applianceClient(newBoxA).sendHeartbeat({ licenseId: license.id, fingerprint: newBoxA.fingerprint }), Code.Unauthenticated);
    const third = await newBox(h, deployment.id, "third-mainboard");
    expect((await activateBox(h, license, third)).state).toBe(DeploymentState.ACTIVE);
    await expectRefusal(activateBox(h, license, await newBox(h, deployment.id, "new-mainboard")), Code.FailedPrecondition, "FINGERPRINT_MISMATCH");
  });
});
