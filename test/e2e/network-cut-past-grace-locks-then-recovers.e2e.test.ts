/**
 * Fault: the network between the boxes and the control plane is cut for longer than the grace
 * window, then restored. The control plane stays up; each box stops talking (SDK `disconnect()`:
 * the stream is dropped and not re-dialled, the box keeps judging itself on its lease).
 *
 * With settings in seconds: at the cut every box goes GRACE at once, and LOCKED(LEASE_EXPIRED)
 * exactly when its lease expires; on the plane, sweeps record the same story from silence alone
 * (ACTIVE → GRACE past heartbeat_timeout, → LOCKED(OFFLINE) past grace_window). Restored
 * (`start()` again), every box streams and is ACTIVE on both sides, a further sweep changes nothing,
 * and the audit trail holds each transition once, on a verified chain.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Appliance, StateChangeEvent } from "@lcp/appliance-sdk";
import { AuditService } from "@lcp/proto/audit/v1/audit_service_pb";
import { FleetSweepService, SweepStatus, type SweepRun } from "@lcp/proto/fleet/v1/fleet_sweep_service_pb";
import { LicensingService } from "@lcp/proto/licensing/v1/licensing_service_pb";
import { DeploymentKind, DeploymentState, LockReason } from "@lcp/proto/licensing/v1/types_pb";
import { e2eDatabases, startCluster, type Cluster } from "../support/cluster.js";
import { applianceFor, auditTrail, eventually, FAST_SETTINGS, heartbeatOf, shrinkSettings } from "../support/story.js";

const BOXES = 3;

/** A sweep's transitions as `FROM→TO(REASON) count` lines, sorted. */
function transitionLines(run: SweepRun): string[] {
  return run.transitions
    .map((t) => `${DeploymentState[t.fromState]}→${DeploymentState[t.toState]}${t.lockReason ? `(${LockReason[t.lockReason]})` : ""} ${t.count}`)
    .sort();
}

describe.each(e2eDatabases())("network cut past the grace window ($name)", ({ databaseUrl }) => {
  let cluster: Cluster;
  const fleet: Array<{ deploymentId: string; box: Appliance; states: StateChangeEvent[] }> = [];
  let cutAt = 0;

  beforeAll(async () => {
    cluster = await startCluster({ databaseUrl });
    await shrinkSettings(cluster);
  }, 120_000);

  afterAll(async () => {
    await Promise.all(fleet.map((f) => f.box.stop().catch(() => undefined)));
    await cluster?.stop();
  }, 60_000);

  const support = () => cluster.adminClient(LicensingService, "support");
  const sweep = async () => {
    const run = (await cluster.adminClient(FleetSweepService, "support").sweep({})).sweep!;
    expect(SweepStatus[run.status]).toBe("SUCCEEDED");
    return run;
  };
  const planeStates = async () =>
    Promise.all(
      fleet.map(async (f) => {
        const d = (await support().getDeployment({ deploymentId: f.deploymentId })).deployment!;
        return `${DeploymentState[d.state]}${d.lockReason ? `(${LockReason[d.lockReason]})` : ""}`;
      }),
    );

  it("boxes stream and are ACTIVE on both sides before the cut", async () => {
    for (let i = 0; i < BOXES; i++) {
      const { deployment, license } = await support().provisionDeployment({ name: `cut-ward-${i}`, customer: "st-mary", kind: DeploymentKind.ON_PREM });
      const box = await applianceFor(cluster, license!, `cut-ward-${i}-mainboard`);
      const states: StateChangeEvent[] = [];
      box.on("state", (e) => states.push(e));
      fleet.push({ deploymentId: deployment!.id, box, states });
      await box.activate();
      box.start();
    }
    for (const f of fleet) {
      await eventually("each box connected in ListHeartbeats", async () => ((await heartbeatOf(cluster, f.deploymentId))?.connected ? true : undefined));
    }
    // Past the heartbeat timeout: beats alone keep them ACTIVE.
    await new Promise((r) => setTimeout(r, FAST_SETTINGS.heartbeatTimeoutMs + 500));
    expect(fleet.map((f) => f.box.state().state)).toEqual(Array(BOXES).fill("ACTIVE"));
    expect(await planeStates()).toEqual(Array(BOXES).fill("ACTIVE"));
    expect(transitionLines(await sweep())).toEqual([]);
  }, 60_000);

  it("cut: each box goes GRACE at once and LOCKED exactly at its lease's expiry; sweeps mark them GRACE, then LOCKED(OFFLINE)", async () => {
    const marks = fleet.map((f) => f.states.length);
    cutAt = Date.now();
    await Promise.all(fleet.map((f) => f.box.disconnect()));
    expect(fleet.map((f) => f.box.state().state)).toEqual(Array(BOXES).fill("GRACE"));
    for (const f of fleet) {
      await eventually("the box's stream gone from ListHeartbeats", async () => ((await heartbeatOf(cluster, f.deploymentId))?.connected === false ? true : undefined), 5_000);
    }

    // Silent past the heartbeat timeout, well inside the grace window: GRACE on the plane.
    await new Promise((r) => setTimeout(r, Math.max(0, cutAt + FAST_SETTINGS.heartbeatTimeoutMs + 700 - Date.now())));
    expect(await planeStates()).toEqual(Array(BOXES).fill("GRACE"));
    expect(transitionLines(await sweep())).toEqual([`ACTIVE→GRACE ${BOXES}`]);

    // Each box locks on its own when its lease runs out, with no word from the plane.
    for (const f of fleet) {
      const expiresAt = f.box.status().leaseExpiresAt!;
      await eventually("LOCKED at the box", () => (f.box.state().state === "LOCKED" ? true : undefined), FAST_SETTINGS.graceWindowMs + 2_000);
      const after = f.states.slice(marks[fleet.indexOf(f)]);
      expect(after.map((s) => `${s.state}${s.reason ? `(${s.reason})` : ""}`)).toEqual(["GRACE", "LOCKED(LEASE_EXPIRED)"]);
      const locked = after.at(-1)!;
      expect(locked.at).toBeGreaterThanOrEqual(expiresAt);
      expect(locked.at - expiresAt).toBeLessThan(250);
    }

    // Silent past the grace window: LOCKED(OFFLINE) on the plane.
    await new Promise((r) => setTimeout(r, Math.max(0, cutAt + FAST_SETTINGS.graceWindowMs + 700 - Date.now())));
    expect(await planeStates()).toEqual(Array(BOXES).fill("LOCKED(OFFLINE)"));
    expect(transitionLines(await sweep())).toEqual([`GRACE→LOCKED(OFFLINE) ${BOXES}`]);
    expect(transitionLines(await sweep())).toEqual([]);
  }, 60_000);

  it("restored: every box streams again and is ACTIVE on both sides; a sweep then changes nothing", async () => {
    for (const f of fleet) f.box.start();
    for (const f of fleet) {
      await eventually("ACTIVE at the box", () => (f.box.state().state === "ACTIVE" ? true : undefined), 10_000);
      await eventually("connected in ListHeartbeats", async () => ((await heartbeatOf(cluster, f.deploymentId))?.connected ? true : undefined), 10_000);
    }
    await eventually("ACTIVE on the plane", async () => ((await planeStates()).every((s) => s === "ACTIVE") ? true : undefined), 5_000);
    // The boxes' own story, start to end: no LOCK is queued for an OFFLINE lock (the box locked
    // itself on its lease), so the returning box goes straight back to ACTIVE on its new lease.
    expect(fleet.map((f) => f.states.map((s) => `${s.state}${s.reason ? `(${s.reason})` : ""}`))).toEqual(
      Array(BOXES).fill(["ACTIVE", "GRACE", "LOCKED(LEASE_EXPIRED)", "ACTIVE"]),
    );
    // Whatever the plane still held as LOCKED(OFFLINE) is reconciled once; then nothing is left.
    await sweep();
    expect(transitionLines(await sweep())).toEqual([]);
    expect(await planeStates()).toEqual(Array(BOXES).fill("ACTIVE"));
  }, 60_000);

  it("the audit trail has each box's transitions exactly once, in order, on a verified chain", async () => {
    const ours = new Set(fleet.map((f) => f.deploymentId));
    const trail = await eventually("every box's return in audit", async () => {
      const events = (await auditTrail(cluster)).filter((e) => ours.has(e.resource?.id ?? ""));
      return fleet.every((f) => events.some((e) => e.resource?.id === f.deploymentId && e.action === "deployment.online")) ? events : undefined;
    });
    for (const f of fleet) {
      const mine = trail.filter((e) => e.resource?.id === f.deploymentId && e.action.startsWith("deployment.")).map((e) => e.action);
      expect(mine).toEqual(["deployment.provision", "deployment.offline", "deployment.offline", "deployment.online"]);
    }
    const verdict = await cluster.adminClient(AuditService, "auditor").verifyChain({});
    expect(verdict).toMatchObject({ ok: true, firstBrokenSeq: 0n, reason: "" });
  }, 60_000);
});
