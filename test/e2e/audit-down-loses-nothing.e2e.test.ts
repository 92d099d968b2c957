/**
 * Fault: the audit app is down for the whole story (docs/design.md §7, "the audit service down for an
 * hour loses nothing"). Every change still happens — each is written to its producer's outbox in
 * the same transaction — and once audit starts, every event arrives exactly once, in each
 * producer's order, and the chain verifies.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Appliance } from "@lcp/appliance-sdk";
import { AuditService } from "@lcp/proto/audit/v1/audit_service_pb";
import { FleetSweepService } from "@lcp/proto/fleet/v1/fleet_sweep_service_pb";
import { SigningKeyService } from "@lcp/proto/signing/v1/signing_key_service_pb";
import { LicensingService } from "@lcp/proto/licensing/v1/licensing_service_pb";
import { DeploymentKind, DeploymentState, SubscriptionStatus } from "@lcp/proto/licensing/v1/types_pb";
import { startCluster, type Cluster } from "../support/cluster.js";
import { applianceFor, auditTrail, describeEvent, eventually } from "../support/story.js";

let cluster: Cluster;
const boxes: Appliance[] = [];

beforeAll(async () => {
  cluster = await startCluster({ apps: ["signing-keys", "licensing", "fleet-sweep"] });
}, 120_000);

afterAll(async () => {
  await Promise.all(boxes.map((b) => b.stop().catch(() => undefined)));
  await cluster?.stop();
}, 60_000);

describe("audit down for the whole run", () => {
  let deploymentId: string;
  let sweepId: string;
  const bulkDeployments: string[] = [];
  const bulkKeys: string[] = [];

  it("provision, activate, suspend, restore, revoke and sweep all work with audit down", async () => {
    expect(cluster.running("audit")).toBe(false);
    const support = cluster.adminClient(LicensingService, "support");
    const { deployment, license } = await support.provisionDeployment({ name: "no-audit-box", customer: "st-mary", kind: DeploymentKind.ON_PREM });
    deploymentId = deployment!.id;
    const box = await applianceFor(cluster, license!, "no-audit-mainboard");
    boxes.push(box);
    await box.activate();
    await support.setSubscriptionStatus({ deploymentId, status: SubscriptionStatus.INVALID, reason: "unpaid" });
    await support.setSubscriptionStatus({ deploymentId, status: SubscriptionStatus.VALID, reason: "paid" });
    const revoked = await support.revokeLicense({ licenseId: license!.id, reason: "decommissioned" });
    expect(DeploymentState[revoked.deployment!.state]).toBe("LOCKED");
    sweepId = (await cluster.adminClient(FleetSweepService, "support").sweep({})).sweep!.id;
  });

  it("200 more changes through licensing and signing-keys while audit is still down", async () => {
    const support = cluster.adminClient(LicensingService, "support");
    const superAdmin = cluster.adminClient(SigningKeyService, "super_admin");
    // 150 provisions (one event each: CLOUD, no licence) and 50 new signing keys, interleaved.
    for (let i = 0; i < 150; i++) {
      const name = `bulk-${String(i).padStart(3, "0")}`;
      bulkDeployments.push((await support.provisionDeployment({ name, customer: "bulk", kind: DeploymentKind.CLOUD })).deployment!.id);
      if (i % 3 === 0) bulkKeys.push((await superAdmin.createKey({ reason: `bulk ${i}` })).key!.kid);
    }
    expect(bulkDeployments).toHaveLength(150);
    expect(bulkKeys).toHaveLength(50);
    expect(cluster.running("audit")).toBe(false);
  }, 60_000);

  it("once audit starts, every event arrives exactly once, in order, and the chain verifies", async () => {
    await cluster.start("audit");
    const expected = [
      "deployment.provision SUCCESS ADMIN:e2e-support deployment",
      "license.issue SUCCESS ADMIN:e2e-support license",
      `license.activate SUCCESS APPLIANCE:${deploymentId} license`,
      "subscription.update SUCCESS ADMIN:e2e-support deployment",
      "deployment.suspend SUCCESS ADMIN:e2e-support deployment",
      "subscription.update SUCCESS ADMIN:e2e-support deployment",
      "deployment.reactivate SUCCESS ADMIN:e2e-support deployment",
      "license.revoke SUCCESS ADMIN:e2e-support license",
      "deployment.lock SUCCESS ADMIN:e2e-support deployment",
      ...bulkDeployments.map(() => "deployment.provision SUCCESS ADMIN:e2e-support deployment"),
    ];
    // The relays back off while audit is away (up to 30 s between attempts), so allow for one full wait.
    const trail = await eventually(
      "every producer's backlog in audit",
      async () => {
        const events = await auditTrail(cluster);
        const fromLicensing = events.filter((e) => e.producer === "licensing");
        const swept = events.some((e) => e.action === "fleet.sweep" && e.resource?.id === sweepId);
        const certified = events.some((e) => e.action === "appliance.certificate.issue");
        const keys = events.filter((e) => e.producer === "signing-keys" && e.action === "signing.key.create").length;
        return fromLicensing.length >= expected.length && swept && certified && keys >= bulkKeys.length ? events : undefined;
      },
      45_000,
    );
    const fromLicensing = trail.filter((e) => e.producer === "licensing");
    expect(fromLicensing.map(describeEvent)).toEqual(expected);
    // Each producer's order survives the outage: the 200 bulk changes arrive as they were made.
    expect(fromLicensing.slice(-150).map((e) => e.resource?.id)).toEqual(bulkDeployments);
    const keyEvents = trail.filter((e) => e.producer === "signing-keys" && e.action === "signing.key.create").map((e) => e.resource?.id);
    expect(keyEvents.slice(-50)).toEqual(bulkKeys);
    // Exactly once: no event id twice, and a gapless chain.
    expect(new Set(trail.map((e) => e.id)).size).toBe(trail.length);
    expect(trail.map((e) => Number(e.seq))).toEqual(trail.map((_, i) => i + 1));
    // signing-keys' own start-up events (its first key, the appliance CA) waited too.
    expect(trail.filter((e) => e.producer === "signing-keys").map((e) => e.action)).toEqual(
      expect.arrayContaining(["signing.key.create", "signing.key.activate", "appliance.certificate.issue"]),
    );

    const verdict = await cluster.adminClient(AuditService, "auditor").verifyChain({});
    expect(verdict).toMatchObject({ ok: true, firstBrokenSeq: 0n });
    expect(verdict.checked).toBe(verdict.headSeq);
  }, 60_000);
});
