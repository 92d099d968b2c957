/**
 * Air-gapped deployments over the admin API (docs/design.md §15): ProvisionDeployment stores the
 * connectivity asked for (unset is ONLINE, an unknown value is refused naming the field);
 * SetConnectivity (license.revoke) switches it through the one change path — the state re-derived
 * with the new measure of silence and audited as the transition, deployment.connectivity
 * {from, to, reason} audited beside it, the same value again a no-op, the licence's lease seq
 * carrying on — and refuses a missing or oversized reason, an unknown deployment and roles that
 * may not revoke; an air-gapped box's leases live air_gapped_lease; GetSettings / UpdateSettings
 * carry air_gapped_lease and air_gapped_renew_after and refuse out-of-range values naming the field.
 */
import { Code, type ConnectError } from "@connectrpc/connect";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { ErrorInfoSchema } from "@lcp/proto/google/rpc/error_details_pb";
import { Connectivity, DeploymentKind, DeploymentState, DirectiveType, LockReason } from "@lcp/proto/licensing/v1/types_pb";
import { testDatabases } from "@lcp/testing/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { activateBox, auditEvents, expectRefusal, newBox, snapshot, startHarness, type LicensingHarness } from "./support.js";

const DAY = 86_400_000;

describe.each(testDatabases())("air-gapped connectivity and settings ($name)", (tdb) => {
  let h: LicensingHarness;
  beforeAll(async () => {
    h = await startHarness(tdb);
  });
  afterAll(async () => {
    await h?.close();
  });

  const fieldOf = (err: ConnectError) => err.findDetails(ErrorInfoSchema)[0]?.metadata["field"];

  /** Expects a refusal with `code` naming `field`, and no row but outbox events changed. */
  async function refusedWithoutChange(call: () => Promise<unknown>, code: Code, field: string, reason?: string) {
    const before = await snapshot(h);
    const err = await expectRefusal(call(), code, reason);
    if (field) expect(fieldOf(err), err.rawMessage).toBe(field);
    const after = await snapshot(h);
    for (const table of ["deployment", "license", "settings", "certificate", "directive"]) expect(after[table], table).toBe(before[table]);
    return err;
  }

  const provision = (connectivity?: Connectivity) =>
    h.admin("onboarding").provisionDeployment({
      name: `site-${Math.random().toString(16).slice(2, 8)}`,
      customer: "Air Gap Clinic",
      kind: DeploymentKind.ON_PREM,
      ...(connectivity === undefined ? {} : { connectivity }),
    });
  const leaseSeqOf = async (licenseId: string) =>
    Number((await h.sql<{ lease_seq: number | string }>(`select lease_seq from license where id = '${licenseId}'`))[0]!.lease_seq);
  const eventsOf = async (deploymentId: string, from: number) => (await auditEvents(h)).slice(from).filter((e) => e.resourceId === deploymentId);

  it("ProvisionDeployment stores the connectivity asked for, unset as ONLINE, audited; an unknown value is refused naming the field", async () => {
    const start = (await auditEvents(h)).length;
    const airGapped = (await provision(Connectivity.AIR_GAPPED)).deployment!;
    expect(airGapped.connectivity).toBe(Connectivity.AIR_GAPPED);
    expect((await provision()).deployment!.connectivity).toBe(Connectivity.ONLINE);
    expect((await provision(Connectivity.ONLINE)).deployment!.connectivity).toBe(Connectivity.ONLINE);
    // Every read of the deployment says so.
    const reader = h.admin("auditor");
    expect((await reader.getDeployment({ deploymentId: airGapped.id })).deployment!.connectivity).toBe(Connectivity.AIR_GAPPED);
    const listed = (await reader.listDeployments({ customer: "Air Gap Clinic" })).deployments.find((d) => d.id === airGapped.id);
    expect(listed!.connectivity).toBe(Connectivity.AIR_GAPPED);
    const provisioned = (await eventsOf(airGapped.id, start)).find((e) => e.action === "deployment.provision");
    expect(provisioned!.details).toMatchObject({ connectivity: "AIR_GAPPED" });
    await refusedWithoutChange(() => provision(7 as Connectivity), Code.InvalidArgument, "connectivity", "INVALID_ARGUMENT");
    await refusedWithoutChange(() => provision(-1 as Connectivity), Code.InvalidArgument, "connectivity", "INVALID_ARGUMENT");
  });

  it("an air-gapped box silent for 20 days is ACTIVE; switched ONLINE it is LOCKED(OFFLINE), audited as the transition; switched back ACTIVE; the lease seq carries on", async () => {
    const support = h.admin("support");
    const { deployment, license } = await provision(Connectivity.AIR_GAPPED);
    await activateBox(h, license!, await newBox(h, deployment!.id));
    const seq = await leaseSeqOf(license!.id);
    expect(seq).toBeGreaterThan(0);
    h.clock.advance(20 * DAY); // past the 14 d grace window, within the 90 d air-gapped lease
    try {
      const detail = await support.getDeployment({ deploymentId: deployment!.id });
      expect(detail.deployment!.state).toBe(DeploymentState.ACTIVE);
      // Its heartbeat status derives the same state; it holds no stream.
      expect([detail.heartbeat!.state, detail.heartbeat!.connected]).toEqual([DeploymentState.ACTIVE, false]);
      const listed = (await support.listHeartbeats({ states: [DeploymentState.ACTIVE] })).heartbeats.find((s) => s.deploymentId === deployment!.id);
      expect(listed?.state).toBe(DeploymentState.ACTIVE);
      const start = (await auditEvents(h)).length;
      const online = (await support.setConnectivity({ deploymentId: deployment!.id, connectivity: Connectivity.ONLINE, reason: "  site opened to the internet " })).deployment!;
      expect([online.connectivity, online.state, online.lockReason]).toEqual([Connectivity.ONLINE, DeploymentState.LOCKED, LockReason.OFFLINE]);
      const events = await eventsOf(deployment!.id, start);
      expect(events.map((e) => e.action).sort()).toEqual(["deployment.connectivity", "deployment.offline"]);
      expect(events.find((e) => e.action === "deployment.connectivity")!.details).toEqual({ from: "AIR_GAPPED", to: "ONLINE", reason: "site opened to the internet" });
      expect(events.find((e) => e.action === "deployment.offline")!.details).toMatchObject({ from: "ACTIVE", to: "LOCKED", lockReason: "OFFLINE" });
      const stored = await h.sql<{ connectivity: string; state: string; lock_reason: string }>(`select connectivity, state, lock_reason from deployment where id = '${deployment!.id}'`);
      expect(stored).toEqual([{ connectivity: "ONLINE", state: "LOCKED", lock_reason: "OFFLINE" }]);
      expect(await leaseSeqOf(license!.id)).toBe(seq);

      const back = (await support.setConnectivity({ deploymentId: deployment!.id, connectivity: Connectivity.AIR_GAPPED, reason: "closed again" })).deployment!;
      expect([back.connectivity, back.state]).toEqual([Connectivity.AIR_GAPPED, DeploymentState.ACTIVE]);
      // Back to ACTIVE renews the lease: the seq carries on above the one before, never restarts.
      expect(await leaseSeqOf(license!.id)).toBe(seq + 1);
    } finally {
      h.clock.advance(-20 * DAY);
    }
  });

  /**
   * A lease token's lifetime in whole days (exp − iat, read from its payload): signing-keys sets
   * iat when it signs, a second or so after licensing computed exp.
   */
  const lifetimeOf = (token: string) => {
    const claims = JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString("utf8")) as { iat: number; exp: number };
    return Math.round((claims.exp - claims.iat) / 86_400);
  };

  it("an air-gapped box's leases live air_gapped_lease, at activation and when renewed; an online box's the grace window", async () => {
    const { deployment, license } = await provision(Connectivity.AIR_GAPPED);
    const activation = await activateBox(h, license!, await newBox(h, deployment!.id));
    expect(lifetimeOf(activation.leaseToken)).toBe(90);
    const renewed = await h.admin("support").sendDirective({ deploymentId: deployment!.id, type: DirectiveType.RENEW_LEASE, reason: "test" });
    expect(lifetimeOf(renewed.directive!.leaseToken)).toBe(90);
    const online = await provision(Connectivity.ONLINE);
    expect(lifetimeOf((await activateBox(h, online.license!, await newBox(h, online.deployment!.id))).leaseToken)).toBe(14);
    // Switched online, the next lease is the grace window's.
    await h.admin("support").setConnectivity({ deploymentId: deployment!.id, connectivity: Connectivity.ONLINE, reason: "opened" });
    const again = await h.admin("support").sendDirective({ deploymentId: deployment!.id, type: DirectiveType.RENEW_LEASE, reason: "test" });
    expect(lifetimeOf(again.directive!.leaseToken)).toBe(14);
  });

  it("a round trip AIR_GAPPED → ONLINE → AIR_GAPPED of a box just seen keeps the licence's lease seq; the same value again is a no-op without an audit event", async () => {
    const support = h.admin("super_admin");
    const { deployment, license } = await provision(Connectivity.AIR_GAPPED);
    await activateBox(h, license!, await newBox(h, deployment!.id));
    const seq = await leaseSeqOf(license!.id);
    const start = (await auditEvents(h)).length;
    for (const [connectivity, from, to] of [
      [Connectivity.ONLINE, "AIR_GAPPED", "ONLINE"],
      [Connectivity.AIR_GAPPED, "ONLINE", "AIR_GAPPED"],
    ] as const) {
      const d = (await support.setConnectivity({ deploymentId: deployment!.id, connectivity, reason: `to ${to}` })).deployment!;
      expect([d.connectivity, d.state]).toEqual([connectivity, DeploymentState.ACTIVE]);
      const last = (await eventsOf(deployment!.id, start)).at(-1)!;
      expect([last.action, last.details]).toEqual(["deployment.connectivity", { from, to, reason: `to ${to}` }]);
    }
    expect(await leaseSeqOf(license!.id)).toBe(seq);
    expect((await eventsOf(deployment!.id, start)).map((e) => e.action)).toEqual(["deployment.connectivity", "deployment.connectivity"]);

    const before = await snapshot(h);
    const eventsBefore = (await auditEvents(h)).length;
    const same = (await support.setConnectivity({ deploymentId: deployment!.id, connectivity: Connectivity.AIR_GAPPED, reason: "again" })).deployment!;
    expect(same.connectivity).toBe(Connectivity.AIR_GAPPED);
    expect(await snapshot(h)).toEqual(before);
    expect((await auditEvents(h)).length).toBe(eventsBefore);
  });

  it("SetConnectivity is license.revoke's: onboarding and auditor are denied, support allowed; bad requests are refused naming the field and change nothing", async () => {
    const { deployment } = await provision(Connectivity.ONLINE);
    const id = deployment!.id;
    const req = { deploymentId: id, connectivity: Connectivity.AIR_GAPPED, reason: "site closed" };
    await refusedWithoutChange(() => h.admin("onboarding").setConnectivity(req), Code.PermissionDenied, "");
    await refusedWithoutChange(() => h.admin("auditor").setConnectivity(req), Code.PermissionDenied, "");
    const support = h.admin("support");
    await refusedWithoutChange(() => support.setConnectivity({ ...req, reason: "" }), Code.InvalidArgument, "reason", "REASON_REQUIRED");
    await refusedWithoutChange(() => support.setConnectivity({ ...req, reason: "   " }), Code.InvalidArgument, "reason", "REASON_REQUIRED");
    await refusedWithoutChange(() => support.setConnectivity({ ...req, reason: "x".repeat(1025) }), Code.InvalidArgument, "reason");
    await refusedWithoutChange(() => support.setConnectivity({ ...req, reason: "bad\u0000reason" }), Code.InvalidArgument, "reason");
    await refusedWithoutChange(() => support.setConnectivity({ ...req, connectivity: 9 as Connectivity }), Code.InvalidArgument, "connectivity");
    await refusedWithoutChange(() => support.setConnectivity({ ...req, deploymentId: "not-a-uuid" }), Code.InvalidArgument, "deployment_id");
    await refusedWithoutChange(() => support.setConnectivity({ ...req, deploymentId: "01900000-0000-7000-8000-000000000000" }), Code.NotFound, "", "NOT_FOUND");
    // The refusals are audited as DENIED under the action.
    const denied = (await auditEvents(h)).filter((e) => e.action === "deployment.connectivity" && e.outcome !== "OUTCOME_SUCCESS");
    expect(denied.length).toBeGreaterThan(0);
    const done = (await support.setConnectivity(req)).deployment!;
    expect([done.connectivity, done.state]).toEqual([Connectivity.AIR_GAPPED, DeploymentState.PENDING]);
  });

  it("GetSettings shows the air-gapped lease (90 d) and renewal (60 d); UpdateSettings changes them by mask and refuses out-of-range values naming the field", async () => {
    const admin = h.admin("super_admin");
    const got = (await admin.getSettings({})).settings!;
    expect([got.airGappedLease?.seconds, got.airGappedRenewAfter?.seconds]).toEqual([90n * 86_400n, 60n * 86_400n]);
    const set = (paths: string[], s: Record<string, number>) => ({
      settings: Object.fromEntries(Object.entries(s).map(([k, v]) => [k, durationFromMs(v)])),
      updateMask: { paths },
    });
    const updated = (await admin.updateSettings(set(["air_gapped_lease", "settings.air_gapped_renew_after"], { airGappedLease: 30 * DAY, airGappedRenewAfter: 20 * DAY }))).settings!;
    expect([updated.airGappedLease?.seconds, updated.airGappedRenewAfter?.seconds]).toEqual([30n * 86_400n, 20n * 86_400n]);
    expect((await h.admin("auditor").getSettings({})).settings!.airGappedLease?.seconds).toBe(30n * 86_400n);
    const row = await h.sql<{ air_gapped_lease_ms: number | string; air_gapped_renew_after_ms: number | string }>("select air_gapped_lease_ms, air_gapped_renew_after_ms from settings");
    expect(row.map((r) => [Number(r.air_gapped_lease_ms), Number(r.air_gapped_renew_after_ms)])).toEqual([[30 * DAY, 20 * DAY]]);

    const bad = async (paths: string[], s: Record<string, number>, field: string, message: RegExp) => {
      const err = await refusedWithoutChange(() => admin.updateSettings(set(paths, s)), Code.InvalidArgument, field, "SETTINGS_OUT_OF_RANGE");
      expect(err.rawMessage).toMatch(message);
    };
    await bad(["air_gapped_lease"], { airGappedLease: 401 * DAY }, "air_gapped_lease", /air_gapped_lease must be between 1 s and 400 d/);
    await bad(["air_gapped_lease"], { airGappedLease: 500 }, "air_gapped_lease", /air_gapped_lease/);
    // At or above the lease, or below 1 s, the renewal age is refused.
    await bad(["air_gapped_renew_after"], { airGappedRenewAfter: 30 * DAY }, "air_gapped_renew_after", /less than air_gapped_lease \(30 d\)/);
    await bad(["air_gapped_renew_after"], { airGappedRenewAfter: 0 }, "air_gapped_renew_after", /air_gapped_renew_after must be at least 1 s/);
    await bad(["air_gapped_lease"], { airGappedLease: 10 * DAY }, "air_gapped_renew_after", /air_gapped_renew_after/);
    // Seconds-scale values are accepted, as tests shrink them.
    const small = (await admin.updateSettings(set(["air_gapped_lease", "air_gapped_renew_after"], { airGappedLease: 2_000, airGappedRenewAfter: 1_000 }))).settings!;
    expect([small.airGappedLease?.seconds, small.airGappedRenewAfter?.seconds]).toEqual([2n, 1n]);
    await admin.updateSettings(set(["air_gapped_lease", "air_gapped_renew_after"], { airGappedLease: 90 * DAY, airGappedRenewAfter: 60 * DAY }));
  });
});
