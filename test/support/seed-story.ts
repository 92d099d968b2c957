/**
 * The product page's whole story across the four real processes, over TLS/mTLS, on SQLite and
 * (when DATABASE_URL is set) PostgreSQL: provision with an auto-issued licence → an appliance on
 * `@lcp/appliance-sdk` activates → subscription INVALID → SUSPENDED → VALID → ACTIVE → revoke →
 * LOCKED and activation refused for ever, the box locking itself → on another deployment a new
 * box after rebind activates → sweep → the audit trail shows every step in order with its actor,
 * and VerifyChain is ok.
 *
 * The boxes hold the heartbeat stream throughout (settings shrunk to seconds, as an operator may on
 * licensing/settings): ListHeartbeats shows them connected with a small lag, every change reaches
 * the box as a directive (SUSPEND, REACTIVATE, LOCK within a second of the revoke), and the sweep
 * through licensing's Reconcile SUCCEEDS over the whole fleet and is idempotent.
 */
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ActivationError, type Appliance, type StateChangeEvent } from "@lcp/appliance-sdk";
import { AuditService } from "@lcp/proto/audit/v1/audit_service_pb";
import { FleetSweepService, SweepStatus, type SweepRun } from "@lcp/proto/fleet/v1/fleet_sweep_service_pb";
import { LicensingService } from "@lcp/proto/licensing/v1/licensing_service_pb";
import { DeploymentKind, DeploymentState, LicenseStatus, LockReason, SubscriptionStatus, type Deployment, type License } from "@lcp/proto/licensing/v1/types_pb";
import { SigningKeyService } from "@lcp/proto/signing/v1/signing_key_service_pb";
import { verifyLicenseToken } from "@lcp/tokens";
import type { Cluster } from "./cluster.js";
import { applianceFor, auditTrail, describeEvent, eventually, FAST_SETTINGS, heartbeatOf, nextDirective, shrinkSettings, TOKEN_ISSUER } from "./story.js";

/**
 * Registers the story's steps (and the hooks that start and stop the cluster) in the calling
 * `describe`; the steps run in order. `start` makes the cluster, e.g. from sources or from the
 * production image; `settings` are the shrunk heartbeat settings the story runs with. Returns the
 * running cluster for steps a caller adds after the story.
 */
export function theSeedStory(start: () => Promise<Cluster>, settings: typeof FAST_SETTINGS = FAST_SETTINGS): () => Cluster {
  let cluster: Cluster;
  const boxes: Appliance[] = [];
  // What the story made, for later steps and the audit check.
  let ward: { deployment: Deployment; license: License };
  let theatre: { deployment: Deployment; license: License };
  let sweepId: string;
  let secondSweepId: string;
  // Every state the ward's box reported about itself, in order.
  const wardStates: StateChangeEvent[] = [];

  beforeAll(async () => {
    cluster = await start();
    await shrinkSettings(cluster, settings);
  }, 120_000);

  afterAll(async () => {
    await Promise.all(boxes.map((b) => b.stop().catch(() => undefined)));
    await cluster?.stop();
  }, 60_000);

  const onboarding = () => cluster.adminClient(LicensingService, "onboarding");
  const support = () => cluster.adminClient(LicensingService, "support");
  const stateOf = async (deploymentId: string) => {
    const d = (await support().getDeployment({ deploymentId })).deployment!;
    return [DeploymentState[d.state], LockReason[d.lockReason]];
  };
  const box = async (license: License, fingerprint: string) => {
    const b = await applianceFor(cluster, license, fingerprint);
    boxes.push(b);
    return b;
  };

  it("provisions an on-prem deployment with an auto-issued licence signed by a control-plane key", async () => {
    const made = await onboarding().provisionDeployment({ name: "icu-ward-3", customer: "st-mary", kind: DeploymentKind.ON_PREM });
    ward = { deployment: made.deployment!, license: made.license! };
    expect(DeploymentState[ward.deployment.state]).toBe("PENDING");
    expect(LicenseStatus[ward.license.status]).toBe("ISSUED");

    const jwks = JSON.parse((await cluster.adminClient(SigningKeyService, "auditor").getJwks({})).jwksJson);
    const verified = await verifyLicenseToken(ward.license.token, { jwks, issuer: TOKEN_ISSUER });
    expect(verified.ok && verified.claims.dep).toBe(ward.deployment.id);

    const { licenses } = await support().listLicenses({ deploymentId: ward.deployment.id });
    expect(licenses.map((l) => l.id)).toEqual([ward.license.id]);
  });

  it("the appliance activates on first run and the deployment becomes ACTIVE", async () => {
    const a = await box(ward.license, "icu-ward-3-mainboard-A");
    a.on("state", (e) => wardStates.push(e));
    const activation = await a.activate();
    expect(activation.deploymentId).toBe(ward.deployment.id);
    expect(a.state().state).toBe("ACTIVE");
    // It holds its stream from here on (a box that waited past twice its heartbeat interval
    // without one would rightly call itself GRACE), and the control plane sees it connected.
    a.start();
    expect(await stateOf(ward.deployment.id)).toEqual(["ACTIVE", "UNSPECIFIED"]);
    const license = (await support().getLicense({ licenseId: ward.license.id })).license!;
    expect(LicenseStatus[license.status]).toBe("ACTIVATED");
    expect(license.fingerprintHash).toMatch(/^[0-9a-f]{64}$/);
    await eventually("the ward's box streaming", () => (a.status().connected ? true : undefined));
    await eventually("the ward's box connected in ListHeartbeats", async () => ((await heartbeatOf(cluster, ward.deployment.id))?.connected ? true : undefined));
  });

  it("heartbeats keep it ACTIVE on both sides, renewing its lease", async () => {
    const a = boxes[0]!;
    // Longer than the heartbeat timeout and the lease renewal age: only beats can keep it ACTIVE.
    await new Promise((r) => setTimeout(r, settings.heartbeatTimeoutMs + settings.leaseRenewAfterMs));
    expect(a.state()).toEqual({ state: "ACTIVE" });
    expect(statesOf(wardStates)).toEqual(["ACTIVE"]);
    expect(a.status().leaseSeq!).toBeGreaterThan(1);
    const beat = (await heartbeatOf(cluster, ward.deployment.id))!;
    expect(beat).toMatchObject({ connected: true, licenseId: ward.license.id, state: DeploymentState.ACTIVE, agentVersion: "e2e-box/1" });
    // last_seen is flushed in batches (at most a second late) and the box beats every second.
    expect(beat.lagMs).toBeLessThan(settings.heartbeatTimeoutMs);
    expect(Number(beat.leaseSeq)).toBe(a.status().leaseSeq);
    expect(await stateOf(ward.deployment.id)).toEqual(["ACTIVE", "UNSPECIFIED"]);
  });

  it("an invalid subscription suspends the deployment and the box, and restoring it reactivates both", async () => {
    const a = boxes[0]!;
    const suspend = nextDirective(a, "SUSPEND");
    const suspended = (await support().setSubscriptionStatus({ deploymentId: ward.deployment.id, status: SubscriptionStatus.INVALID, reason: "invoice unpaid" })).deployment!;
    expect([DeploymentState[suspended.state], SubscriptionStatus[suspended.subscriptionStatus]]).toEqual(["SUSPENDED", "INVALID"]);
    expect(await stateOf(ward.deployment.id)).toEqual(["SUSPENDED", "UNSPECIFIED"]);
    await suspend;
    await eventually("SUSPENDED at the box", () => (a.state().state === "SUSPENDED" ? true : undefined), 3_000);

    const reactivate = nextDirective(a, "REACTIVATE");
    const restored = (await support().setSubscriptionStatus({ deploymentId: ward.deployment.id, status: SubscriptionStatus.VALID, reason: "invoice paid" })).deployment!;
    expect(DeploymentState[restored.state]).toBe("ACTIVE");
    expect(await stateOf(ward.deployment.id)).toEqual(["ACTIVE", "UNSPECIFIED"]);
    await reactivate;
    await eventually("ACTIVE at the box", () => (a.state().state === "ACTIVE" ? true : undefined), 3_000);
    // The box's own "state" events: exactly the product page's sequence, nothing in between.
    expect(statesOf(wardStates)).toEqual(["ACTIVE", "SUSPENDED", "ACTIVE"]);
  });

  it("revoke locks the deployment and the streaming box within a second, and refuses activation for ever", async () => {
    const stolen = boxes[0]!;
    const lock = nextDirective(stolen, "LOCK");
    const sent = performance.now();
    const revoked = await support().revokeLicense({ licenseId: ward.license.id, reason: "reported stolen" });
    expect(LicenseStatus[revoked.license!.status]).toBe("REVOKED");
    // Pushed down the held stream: the box locks itself without asking.
    const got = await lock;
    expect(got.at - sent).toBeLessThan(1_000);
    // LOCKED by the pushed directive — or, when the replica ends the stream with LICENSE_REVOKED
    // before the box has applied it (the revoke went through the other replica), by that refusal,
    // which outranks it. Locked either way, at once.
    const locked = stolen.state();
    expect(locked.state).toBe("LOCKED");
    expect(["LOCK_DIRECTIVE", "REVOKED"]).toContain(locked.reason);
    expect(statesOf(wardStates)).toEqual(["ACTIVE", "SUSPENDED", "ACTIVE", "LOCKED"]);
    expect(await stateOf(ward.deployment.id)).toEqual(["LOCKED", "REVOKED"]);

    // The stolen box tries to come back by activating again: refused, and it stays locked.
    const refusal = await stolen.activate().then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(refusal).toBeInstanceOf(ActivationError);
    expect((refusal as ActivationError).code).toBe("LICENSE_REVOKED");
    expect(stolen.state()).toMatchObject({ state: "LOCKED", reason: "REVOKED" });

    // Any other box with the revoked token is refused too; a revoked licence is never rebound or replaced.
    const other = await box(ward.license, "icu-ward-3-mainboard-Z");
    await expect(other.activate()).rejects.toMatchObject({ code: "LICENSE_REVOKED" });
    await expect(support().rebindLicense({ licenseId: ward.license.id, newFingerprint: "x", reason: "try" })).rejects.toMatchObject({ code: Code.FailedPrecondition });
    expect(await stateOf(ward.deployment.id)).toEqual(["LOCKED", "REVOKED"]);
  });

  it("after a rebind to replacement hardware the new box activates and streams, and the old one is refused", async () => {
    const made = await onboarding().provisionDeployment({ name: "theatre-1", customer: "st-mary", kind: DeploymentKind.ON_PREM });
    theatre = { deployment: made.deployment!, license: made.license! };
    const oldBox = await box(theatre.license, "theatre-1-mainboard-B");
    await oldBox.activate();
    expect(await stateOf(theatre.deployment.id)).toEqual(["ACTIVE", "UNSPECIFIED"]);

    await support().rebindLicense({ licenseId: theatre.license.id, newFingerprint: "theatre-1-mainboard-C", reason: "mainboard replaced" });
    expect(await stateOf(theatre.deployment.id)).toEqual(["PENDING", "UNSPECIFIED"]);

    await expect(oldBox.activate()).rejects.toMatchObject({ code: "FINGERPRINT_MISMATCH" });
    const newBox = await box(theatre.license, "theatre-1-mainboard-C");
    const activation = await newBox.activate();
    expect(activation.deploymentId).toBe(theatre.deployment.id);
    newBox.start();
    expect(newBox.state().state).toBe("ACTIVE");
    expect(await stateOf(theatre.deployment.id)).toEqual(["ACTIVE", "UNSPECIFIED"]);
    const beat = await eventually("the new box connected in ListHeartbeats", async () => {
      const row = await heartbeatOf(cluster, theatre.deployment.id);
      return row?.connected && row.lagMs < settings.heartbeatTimeoutMs ? row : undefined;
    });
    expect(beat).toMatchObject({ licenseId: theatre.license.id, state: DeploymentState.ACTIVE });
    expect(newBox.status().connected).toBe(true);
  });

  it("a health sweep reconciles the whole fleet on demand, its report is kept, and a re-run changes nothing", async () => {
    const fleet = cluster.adminClient(FleetSweepService, "support");
    const { deployments } = await support().listDeployments({ pageSize: 500 });
    const run = (await fleet.sweep({})).sweep!;
    sweepId = run.id;
    expect(run.requestedBy).toBe(cluster.adminSubject("support"));
    expect(SweepStatus[run.status]).toBe("SUCCEEDED");
    expect(run.examined).toBeGreaterThanOrEqual(BigInt(deployments.length));
    expect(deployments.length).toBeGreaterThanOrEqual(2);
    expect([run.failures, run.error]).toEqual([0n, ""]);
    const stored = (await fleet.getSweep({ sweepId })).sweep!;
    expect(stored.id).toBe(sweepId);
    expect(SweepStatus[stored.status]).toBe("SUCCEEDED");
    expect(stored.finishTime).toBeDefined();

    // Idempotent: the fleet is already what its data says, so a second run makes no transition.
    const again = (await fleet.sweep({})).sweep!;
    secondSweepId = again.id;
    expect(SweepStatus[again.status]).toBe("SUCCEEDED");
    expect(transitionsOf(again)).toBe(0n);
    // And the sweep did not disturb what the story left: the stolen box locked, the new box ACTIVE.
    expect(await stateOf(ward.deployment.id)).toEqual(["LOCKED", "REVOKED"]);
    expect(await stateOf(theatre.deployment.id)).toEqual(["ACTIVE", "UNSPECIFIED"]);
    const { sweeps } = await fleet.listSweeps({});
    expect(sweeps.map((s) => s.id)).toEqual(expect.arrayContaining([sweepId, again.id]));
  });

  it("the audit trail shows every step in order with its actor, and the chain verifies", async () => {
    const ours = new Set([ward.deployment.id, ward.license.id, theatre.deployment.id, theatre.license.id]);
    const expected = [
      `deployment.provision SUCCESS ADMIN:${cluster.adminSubject("onboarding")} deployment`,
      `license.issue SUCCESS ADMIN:${cluster.adminSubject("onboarding")} license`,
      `license.activate SUCCESS APPLIANCE:${ward.deployment.id} license`,
      `subscription.update SUCCESS ADMIN:${cluster.adminSubject("support")} deployment`,
      `deployment.suspend SUCCESS ADMIN:${cluster.adminSubject("support")} deployment`,
      `subscription.update SUCCESS ADMIN:${cluster.adminSubject("support")} deployment`,
      `deployment.reactivate SUCCESS ADMIN:${cluster.adminSubject("support")} deployment`,
      `license.revoke SUCCESS ADMIN:${cluster.adminSubject("support")} license`,
      `deployment.lock SUCCESS ADMIN:${cluster.adminSubject("support")} deployment`,
      `license.activate DENIED APPLIANCE:${ward.deployment.id} license`,
      `license.activate DENIED APPLIANCE:${ward.deployment.id} license`,
      `license.rebind DENIED ADMIN:${cluster.adminSubject("support")} license`,
      `deployment.provision SUCCESS ADMIN:${cluster.adminSubject("onboarding")} deployment`,
      `license.issue SUCCESS ADMIN:${cluster.adminSubject("onboarding")} license`,
      `license.activate SUCCESS APPLIANCE:${theatre.deployment.id} license`,
      `license.rebind SUCCESS ADMIN:${cluster.adminSubject("support")} license`,
      `license.activate DENIED APPLIANCE:${theatre.deployment.id} license`,
      `license.activate SUCCESS APPLIANCE:${theatre.deployment.id} license`,
    ];
    // Licensing's own events arrive in the order it wrote them (one outbox, one relay).
    const trail = await eventually("licensing's events in audit", async () => {
      const events = (await auditTrail(cluster)).filter((e) => e.producer === "licensing" && ours.has(e.resource?.id ?? ""));
      return events.length >= expected.length ? events : undefined;
    });
    expect(trail.map(describeEvent)).toEqual(expected);
    const revoke = trail.find((e) => e.action === "license.revoke")!;
    expect(revoke.details).toMatchObject({ reason: "reported stolen" });

    // The other producers: signing-keys issued each activated box its certificate at licensing's
    // request, and fleet-sweep recorded the operator's sweep.
    const all = await eventually("the sweep's event in audit", async () => {
      const events = await auditTrail(cluster);
      return events.some((e) => e.action === "fleet.sweep") ? events : undefined;
    });
    const certificates = all.filter((e) => e.action === "appliance.certificate.issue" && ours.has(e.resource?.id ?? ""));
    expect(certificates.map(describeEvent)).toEqual(Array(3).fill("appliance.certificate.issue SUCCESS SERVICE:licensing deployment"));
    // The operator's settings change came first; both sweeps were recorded, in order, after the story.
    const settings = all.filter((e) => e.action === "settings.update").map(describeEvent);
    expect(settings).toEqual([`settings.update SUCCESS ADMIN:${cluster.adminSubject("super_admin")} settings`]);
    expect(all.findIndex((e) => e.action === "settings.update")).toBeLessThan(all.findIndex((e) => e.action === "deployment.provision"));
    const sweeps = all.filter((e) => e.action === "fleet.sweep");
    expect(sweeps.map((e) => `${e.resource?.id} ${e.actor?.id} ${e.resource?.type}`)).toEqual([`${sweepId} ${cluster.adminSubject("support")} sweep`, `${secondSweepId} ${cluster.adminSubject("support")} sweep`]);
    // After the story in time. Not necessarily in seq: each producer's relay delivers its own
    // events in order, but two producers' relays race each other into the chain.
    expect(timestampMs(sweeps[0]!.occurredAt!)).toBeGreaterThanOrEqual(timestampMs(trail.at(-1)!.occurredAt!));
    // The trail is one gapless chain.
    expect(all.map((e) => Number(e.seq))).toEqual(all.map((_, i) => i + 1));

    const verdict = await cluster.adminClient(AuditService, "auditor").verifyChain({});
    expect(verdict).toMatchObject({ ok: true, firstBrokenSeq: 0n, reason: "" });
    expect(verdict.checked).toBe(verdict.headSeq);
    expect(verdict.checked).toBeGreaterThanOrEqual(BigInt(all.length));
  });

  it("refuses what the roles do not allow, across processes", async () => {
    const err = await cluster
      .adminClient(LicensingService, "auditor")
      .revokeLicense({ licenseId: theatre.license.id, reason: "not mine to do" })
      .catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.PermissionDenied);
    expect(await stateOf(theatre.deployment.id)).toEqual(["ACTIVE", "UNSPECIFIED"]);
  });
  return () => cluster;
}

/** How many transitions a sweep made, all kinds together. */
function transitionsOf(run: SweepRun): bigint {
  return run.transitions.reduce((sum, t) => sum + t.count, 0n);
}

/** The states a box went through, in order; a change of lock reason while LOCKED is not a new state. */
function statesOf(events: readonly StateChangeEvent[]): string[] {
  return events.map((e) => e.state).filter((state, i, all) => i === 0 || all[i - 1] !== state);
}
