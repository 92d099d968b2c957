/**
 * Fault: `kill -9` of licensing in the middle of a burst of changes. Every change the caller was
 * told succeeded survives the crash, the events of the changes reach audit exactly once after
 * the restart (the outbox is written in the change's transaction; Append is idempotent by id),
 * and a box activated before the crash is still the bound box afterwards.
 *
 * Streams reconnecting across the crash (and no duplicate transitions on them) join this file
 * once licensing serves the Heartbeat stream (issue 5).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Appliance } from "@lcp/appliance-sdk";
import { AuditService, Outcome } from "@lcp/proto/audit/v1/audit_service_pb";
import { LicensingService } from "@lcp/proto/licensing/v1/licensing_service_pb";
import { DeploymentKind, DeploymentState, SubscriptionStatus } from "@lcp/proto/licensing/v1/types_pb";
import { startCluster, type Cluster } from "../support/cluster.js";
import { applianceFor, auditTrail, eventually } from "../support/story.js";

let cluster: Cluster;
const boxes: Appliance[] = [];

beforeAll(async () => {
  cluster = await startCluster();
}, 120_000);

afterAll(async () => {
  await Promise.all(boxes.map((b) => b.stop().catch(() => undefined)));
  await cluster?.stop();
}, 60_000);

describe("kill -9 of licensing", () => {
  const acknowledged: Array<{ deploymentId: string; subscription: string }> = [];

  it("keeps every acknowledged change and the bound box across the crash", async () => {
    const support = cluster.adminClient(LicensingService, "support");
    const { deployment, license } = await support.provisionDeployment({ name: "crash-box", customer: "st-mary", kind: DeploymentKind.ON_PREM });
    const box = await applianceFor(cluster, license!, "crash-mainboard");
    boxes.push(box);
    await box.activate();

    // A burst of changes still in flight (and in the outbox) when licensing dies.
    const burst = Array.from({ length: 12 }, async (_, i) => {
      const made = await support.provisionDeployment({ name: `crash-fleet-${i}`, customer: "st-mary", kind: DeploymentKind.ON_PREM });
      const id = made.deployment!.id;
      const suspended = await support.setSubscriptionStatus({ deploymentId: id, status: SubscriptionStatus.INVALID, reason: "unpaid" });
      acknowledged.push({ deploymentId: id, subscription: SubscriptionStatus[suspended.deployment!.subscriptionStatus] });
    });
    const settled = Promise.allSettled(burst);
    await eventually("a few acknowledged changes", () => (acknowledged.length >= 3 ? true : undefined), 20_000);
    const exit = await cluster.kill("licensing", "SIGKILL");
    expect(exit.signal).toBe("SIGKILL");
    await settled;

    await cluster.start("licensing");
    for (const { deploymentId, subscription } of acknowledged) {
      expect(subscription).toBe("INVALID");
      const got = (await support.getDeployment({ deploymentId })).deployment!;
      // Never activated, so still PENDING (PENDING outranks SUSPENDED), with the invalid subscription kept.
      expect([DeploymentState[got.state], SubscriptionStatus[got.subscriptionStatus]]).toEqual(["PENDING", "INVALID"]);
    }
    expect(DeploymentState[(await support.getDeployment({ deploymentId: deployment!.id })).deployment!.state]).toBe("ACTIVE");
    // The same box may activate again (reinstall); another is still refused: the binding survived.
    await box.activate();
    const thief = await applianceFor(cluster, license!, "other-mainboard");
    boxes.push(thief);
    await expect(thief.activate()).rejects.toMatchObject({ code: "FINGERPRINT_MISMATCH" });
  }, 60_000);

  it("delivers each change's events to audit exactly once after the restart, on a verified chain", async () => {
    const trail = await eventually(
      "the acknowledged changes' events",
      async () => {
        const events = await auditTrail(cluster);
        const updated = new Set(events.filter((e) => e.action === "subscription.update").map((e) => e.resource?.id));
        return acknowledged.every((a) => updated.has(a.deploymentId)) ? events : undefined;
      },
      45_000,
    );
    expect(new Set(trail.map((e) => e.id)).size).toBe(trail.length);
    for (const { deploymentId } of acknowledged) {
      const mine = trail.filter((e) => e.resource?.id === deploymentId && e.outcome === Outcome.SUCCESS).map((e) => e.action);
      expect(mine).toEqual(["deployment.provision", "subscription.update"]);
    }
    const verdict = await cluster.adminClient(AuditService, "auditor").verifyChain({});
    expect(verdict).toMatchObject({ ok: true, firstBrokenSeq: 0n });
  }, 60_000);
});
