/**
 * "A healthy heartbeat keeps the deployment active. If the box can't reach the control plane, it
 * runs on an offline grace window before it locks down." With the real SDK over mTLS and settings
 * in seconds: healthy beats keep ACTIVE on both sides (last_seen moves, leases are renewed with a
 * strictly increasing seq); licensing stopped → the box reports GRACE, then LOCKED exactly when
 * its lease expires; licensing back on the same port → the box streams again and is ACTIVE.
 */
import { DeploymentState } from "@lcp/proto/licensing/v1/types_pb";
import { testDatabases } from "@lcp/testing/db";
import type { StateChangeEvent } from "@lcp/appliance-sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LicensingApp } from "../src/app.js";
import { createSdkBoxes, FAST, freePort, setSettings, startReplica, until } from "./heartbeat-support.js";
import { provisionOnPrem, startHarness, type LicensingHarness } from "./support.js";

describe.each(testDatabases())("heartbeat and offline grace ($name)", (tdb) => {
  let h: LicensingHarness;
  let port: number;
  let restarted: LicensingApp | undefined;
  let boxes: Awaited<ReturnType<typeof createSdkBoxes>>;
  beforeAll(async () => {
    port = await freePort();
    h = await startHarness(tdb, { port, replicaId: "first" });
    boxes = await createSdkBoxes();
    await setSettings(h, FAST);
  });
  afterAll(async () => {
    await boxes?.stopAll();
    await restarted?.close();
    await h?.close();
  });

  it("stays ACTIVE while beating, locks exactly at lease expiry while licensing is down, and comes back ACTIVE", async () => {
    const { deployment, license } = await provisionOnPrem(h);
    const box = await boxes.box(h, license);
    const states: StateChangeEvent[] = [];
    box.on("state", (e) => states.push(e));
    await box.activate();
    box.start();
    await until(() => box.status().connected, "the stream to be healthy");
    const firstSeq = box.status().leaseSeq!;

    // Healthy for longer than the heartbeat timeout and the lease renewal age.
    await new Promise((r) => setTimeout(r, 3_500));
    expect(box.state()).toEqual({ state: "ACTIVE" });
    // Never anything but ACTIVE while licensing answered.
    expect(states.map((s) => s.state)).toEqual(["ACTIVE"]);
    const dep = (await h.admin("support").getDeployment({ deploymentId: deployment.id })).deployment!;
    expect(dep.state).toBe(DeploymentState.ACTIVE);
    // The lease was re-signed (older than lease_renew_after) with a higher seq.
    expect(box.status().leaseSeq!).toBeGreaterThan(firstSeq);

    // Licensing stops: the box runs on its lease (GRACE), then locks when it expires.
    const stoppedAt = states.length;
    await h.licensing.close();
    await until(() => box.state().state === "GRACE", "GRACE at the box", 3_000);
    const expiresAt = box.status().leaseExpiresAt!;
    await until(() => box.state().state === "LOCKED", "LOCKED at the box", FAST.graceWindowMs + 2_000);
    const locked = states.slice(stoppedAt).find((s) => s.state === "LOCKED")!;
    expect(locked.reason).toBe("LEASE_EXPIRED");
    // Exactly at expiry: the SDK wakes at lease exp, within its 25 ms evaluation step.
    expect(locked.at).toBeGreaterThanOrEqual(expiresAt);
    expect(locked.at - expiresAt).toBeLessThan(250);

    // Licensing back where the box expects it: a fresh lease, ACTIVE again.
    restarted = await startReplica(h, { port, replicaId: "first" });
    await until(() => box.state().state === "ACTIVE", "ACTIVE again at the box", 5_000);
    // last_seen reaches the database with the next batched flush (at most a second later).
    await until(
      async () => (await h.admin("support").getDeployment({ deploymentId: deployment.id })).deployment!.state === DeploymentState.ACTIVE,
      "ACTIVE in licensing",
      2_000,
    );
  });
});
