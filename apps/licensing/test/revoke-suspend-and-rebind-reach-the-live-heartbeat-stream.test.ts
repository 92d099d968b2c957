/**
 * Changes reach a streaming box at once (docs/design.md §5 "every state change pushes a directive"),
 * with the real SDK as the box over mTLS: revoke → LOCK in under a second; subscription INVALID →
 * SUSPEND, VALID → REACTIVATE; rebind → the old box is told LOCK and the new box streams. And
 * across replicas (PostgreSQL): the box streams to replica B, the revoke is sent to replica A,
 * LOCK arrives in under a second through LISTEN/NOTIFY.
 */
import { SubscriptionStatus } from "@lcp/proto/licensing/v1/types_pb";
import { testDatabases } from "@lcp/testing/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSdkBoxes, FAST, nextDirective, setSettings, startReplica, until } from "./heartbeat-support.js";
import { provisionOnPrem, startHarness, type LicensingHarness } from "./support.js";

describe.each(testDatabases())("pushed directives ($name)", (tdb) => {
  let h: LicensingHarness;
  let boxes: Awaited<ReturnType<typeof createSdkBoxes>>;
  beforeAll(async () => {
    h = await startHarness(tdb);
    boxes = await createSdkBoxes();
    // Leases renewed rarely here, so every directive a box gets is one a change caused.
    await setSettings(h, { ...FAST, heartbeatTimeoutMs: 5_000, graceWindowMs: 60_000, leaseRenewAfterMs: 30_000 });
  });
  afterAll(async () => {
    await boxes?.stopAll();
    await h?.close();
  });

  it("revoke while streaming locks the box in under a second", async () => {
    const { license } = await provisionOnPrem(h);
    const box = await boxes.box(h, license);
    await box.activate();
    box.start();
    await until(() => box.status().connected, "the stream to be healthy");
    expect(box.state()).toEqual({ state: "ACTIVE" });

    const lock = nextDirective(box, "LOCK");
    const sent = performance.now();
    await h.admin("support").revokeLicense({ licenseId: license.id, reason: "stolen from ward 3" });
    const got = await lock;
    expect(got.at - sent).toBeLessThan(1_000);
    expect(box.state().state).toBe("LOCKED");
  });

  it("subscription INVALID suspends the streaming box and VALID reactivates it", async () => {
    const { deployment, license } = await provisionOnPrem(h);
    const box = await boxes.box(h, license);
    await box.activate();
    box.start();
    await until(() => box.status().connected, "the stream to be healthy");

    const suspend = nextDirective(box, "SUSPEND");
    await h.admin("support").setSubscriptionStatus({ deploymentId: deployment.id, status: SubscriptionStatus.INVALID, reason: "unpaid" });
    await suspend;
    await until(() => box.state().state === "SUSPENDED", "SUSPENDED at the box");

    const reactivate = nextDirective(box, "REACTIVATE");
    await h.admin("support").setSubscriptionStatus({ deploymentId: deployment.id, status: SubscriptionStatus.VALID, reason: "paid" });
    await reactivate;
    await until(() => box.state().state === "ACTIVE", "ACTIVE at the box");
  });

  it("rebind locks the old box and the new box activates and streams", async () => {
    const { license } = await provisionOnPrem(h);
    const oldBox = await boxes.box(h, license, { fingerprint: "old-mainboard" });
    await oldBox.activate();
    oldBox.start();
    await until(() => oldBox.status().connected, "the old box streaming");

    const lock = nextDirective(oldBox, "LOCK");
    await h.admin("support").rebindLicense({ licenseId: license.id, newFingerprint: "new-mainboard", reason: "mainboard replaced" });
    await lock;
    expect(oldBox.state().state).toBe("LOCKED");

    const newBox = await boxes.box(h, license, { fingerprint: "new-mainboard" });
    await newBox.activate();
    newBox.start();
    await until(() => newBox.status().connected, "the new box streaming");
    // The LOCK written for the old box is never redelivered to its replacement.
    await new Promise((r) => setTimeout(r, 1_500));
    expect(newBox.state()).toEqual({ state: "ACTIVE" });
    expect(oldBox.state().state).toBe("LOCKED");
  });

  if (tdb.name === "postgresql") {
    it("two licensing replicas on one schema: box streams to B, revoke sent to A, LOCK in under a second", async () => {
      const b = await startReplica(h, { replicaId: "replica-b" });
      try {
        const { deployment, license } = await provisionOnPrem(h);
        const box = await boxes.box(h, license, { baseUrl: b.url });
        await box.activate();
        box.start();
        await until(() => box.status().connected, "the box streaming to B");
        // A's heartbeat screen names B as the replica holding the stream (presence is flushed within a second).
        await until(async () => {
          const [status] = (await h.admin("support").listHeartbeats({ deploymentId: deployment.id })).heartbeats;
          return status?.connected === true && status.replica === "replica-b";
        }, "A to see the stream on B", 3_000);
        const lock = nextDirective(box, "LOCK");
        const sent = performance.now();
        // h.admin talks to the harness's licensing: replica A.
        await h.admin("support").revokeLicense({ licenseId: license.id, reason: "decommissioned" });
        const got = await lock;
        expect(got.at - sent).toBeLessThan(1_000);
      } finally {
        await b.close();
      }
    });
  }
});
