/**
 * GetDeployment, the deployment detail screen: before activation the deployment and its licence
 * only; from activation on also its heartbeat (as ListHeartbeats shows it) and the newest
 * certificate issued to its box, which a reinstall replaces and a revoke marks. Token and
 * fingerprint hashes (the licence's and the certificate's) only for roles that may issue; the
 * heartbeat only for roles with heartbeat.read.
 */
import { createHash, X509Certificate } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { normalizeSerialNumber } from "@lcp/pki";
import { ErrorInfoSchema } from "@lcp/proto/google/rpc/error_details_pb";
import { DeploymentState, LicenseStatus, LockReason } from "@lcp/proto/licensing/v1/types_pb";
import { testDatabases } from "@lcp/testing/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSdkBoxes, until } from "./heartbeat-support.js";
import { activateBox, expectRefusal, newBox, provisionOnPrem, startHarness, type LicensingHarness } from "./support.js";

const sha256 = (s: string) => createHash("sha256").update(s, "utf8").digest("hex");
const serialOf = (pem: string) => normalizeSerialNumber(new X509Certificate(pem).serialNumber);

describe.each(testDatabases())("GetDeployment detail ($name)", (tdb) => {
  let h: LicensingHarness;
  let boxes: Awaited<ReturnType<typeof createSdkBoxes>>;
  beforeAll(async () => {
    h = await startHarness(tdb);
    boxes = await createSdkBoxes();
  });
  afterAll(async () => {
    await boxes?.stopAll();
    await h?.close();
  });

  const detail = async (role: string, deploymentId: string) => h.admin(role).getDeployment({ deploymentId });

  it("shows the licence before activation, then heartbeat and the newest certificate, redacted per role", async () => {
    const { deployment, license } = await provisionOnPrem(h);
    const pending = await detail("support", deployment.id);
    expect(pending.deployment).toMatchObject({ id: deployment.id, state: DeploymentState.PENDING, licenseId: license.id });
    expect(pending.license).toMatchObject({ id: license.id, status: LicenseStatus.ISSUED, token: license.token, fingerprintHash: "" });
    expect(pending.heartbeat).toBeUndefined();
    expect(pending.certificate).toBeUndefined();
    expect((await detail("auditor", deployment.id)).license).toMatchObject({ id: license.id, token: "", kid: license.kid });

    const box = await newBox(h, deployment.id, "detail-box");
    const activation = await activateBox(h, license, box);
    const before = h.clock.now().getTime();
    const active = await detail("support", deployment.id);
    expect(active.deployment!.state).toBe(DeploymentState.ACTIVE);
    expect(active.license).toMatchObject({ id: license.id, status: LicenseStatus.ACTIVATED, token: license.token, fingerprintHash: sha256(box.fingerprint) });
    const x509 = new X509Certificate(activation.certificatePem);
    expect(active.certificate).toMatchObject({ serial: serialOf(activation.certificatePem), fingerprintHash: sha256(box.fingerprint) });
    expect(active.certificate!.revokeTime).toBeUndefined();
    expect(Math.abs(timestampDate(active.certificate!.notBefore!).getTime() - before)).toBeLessThan(10_000);
    expect(Math.abs(timestampDate(active.certificate!.notAfter!).getTime() - new Date(x509.validTo).getTime())).toBeLessThan(1_000);
    expect(active.heartbeat).toMatchObject({
      deploymentId: deployment.id,
      licenseId: license.id,
      state: DeploymentState.ACTIVE,
      connected: false,
      replica: "",
      agentVersion: "test/1.0",
      pendingDirectives: 0,
    });
    expect(active.heartbeat!.leaseSeq).toBeGreaterThanOrEqual(1n);
    expect(active.heartbeat!.lastSeenTime).toBeDefined();
    expect(Number(active.heartbeat!.lag!.seconds)).toBeLessThan(10);

    // A read-only role: no token, no fingerprint hash anywhere; the heartbeat it may read.
    const audited = await detail("auditor", deployment.id);
    expect(audited.license).toMatchObject({ id: license.id, status: LicenseStatus.ACTIVATED, token: "", fingerprintHash: "" });
    expect(audited.certificate).toMatchObject({ serial: active.certificate!.serial, fingerprintHash: "" });
    expect(audited.certificate!.notAfter).toEqual(active.certificate!.notAfter);
    expect(audited.heartbeat).toMatchObject({ deploymentId: deployment.id, state: DeploymentState.ACTIVE });
    // Onboarding may issue (so sees the licence whole) but not read heartbeats.
    const onboarding = await detail("onboarding", deployment.id);
    expect(onboarding.license!.token).toBe(license.token);
    expect(onboarding.certificate!.fingerprintHash).toBe(sha256(box.fingerprint));
    expect(onboarding.heartbeat).toBeUndefined();

    // Time alone: past the heartbeat timeout the heartbeat shows GRACE and the lag.
    h.clock.advance(10 * 60_000);
    try {
      const silent = await detail("support", deployment.id);
      expect(silent.deployment!.state).toBe(DeploymentState.GRACE);
      expect(silent.heartbeat!.state).toBe(DeploymentState.GRACE);
      expect(Number(silent.heartbeat!.lag!.seconds)).toBeGreaterThanOrEqual(600);
    } finally {
      h.clock.advance(-10 * 60_000);
    }

    // A reinstall (same fingerprint, new key) gets a new certificate: the newest is shown.
    const reinstalled = await newBox(h, deployment.id, box.fingerprint);
    const again = await activateBox(h, license, reinstalled);
    expect(serialOf(again.certificatePem)).not.toBe(active.certificate!.serial);
    const newest = (await detail("support", deployment.id)).certificate!;
    expect(newest.serial).toBe(serialOf(again.certificatePem));
    expect(newest.revokeTime).toBeUndefined();

    // Revoked: the licence, the state and the certificate say so.
    await h.admin("support").revokeLicense({ licenseId: license.id, reason: "contract ended" });
    const revoked = await detail("auditor", deployment.id);
    expect(revoked.deployment).toMatchObject({ state: DeploymentState.LOCKED, lockReason: LockReason.REVOKED });
    expect(revoked.license!.status).toBe(LicenseStatus.REVOKED);
    expect(revoked.certificate!.serial).toBe(serialOf(again.certificatePem));
    expect(revoked.certificate!.revokeTime).toBeDefined();
    expect(revoked.heartbeat!.state).toBe(DeploymentState.LOCKED);
  });

  it("shows a stream held by this replica as connected, with the agent the box reported", async () => {
    const { deployment, license } = await provisionOnPrem(h);
    const box = await boxes.box(h, license);
    await box.activate();
    box.start();
    await until(() => box.status().connected, "the stream to be healthy");
    await until(async () => (await detail("auditor", deployment.id)).heartbeat?.connected === true, "the stream to show", 3_000);
    expect((await detail("auditor", deployment.id)).heartbeat).toMatchObject({ connected: true, replica: "test", agentVersion: "sdk-test/2.0", state: DeploymentState.ACTIVE });
    await box.stop();
    await until(async () => (await detail("auditor", deployment.id)).heartbeat?.connected === false, "the stream to go", 3_000);
  });

  it("refuses bad and unknown ids, and callers without license.read", async () => {
    const bad = await expectRefusal(h.admin("auditor").getDeployment({ deploymentId: "not-a-uuid" }), Code.InvalidArgument, "INVALID_ARGUMENT");
    expect(bad.findDetails(ErrorInfoSchema)[0]?.metadata["field"]).toBe("deployment_id");
    await expectRefusal(h.admin("auditor").getDeployment({ deploymentId: "" }), Code.InvalidArgument, "INVALID_ARGUMENT");
    await expectRefusal(h.admin("auditor").getDeployment({ deploymentId: "0190a000-0000-7000-8000-000000000001" }), Code.NotFound);
    const { deployment } = await provisionOnPrem(h);
    await expectRefusal(h.admin("no-such-role").getDeployment({ deploymentId: deployment.id }), Code.PermissionDenied);
  });
});
