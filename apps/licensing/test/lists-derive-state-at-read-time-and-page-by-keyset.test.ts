/**
 * Reads: ListDeployments / GetDeployment derive the state at read time from the facts and the
 * current settings (never the stored state), so time passing moves an ACTIVE deployment to GRACE
 * and then LOCKED(OFFLINE) without any write; state and status filters agree with what is shown;
 * pages are keyset pages whose tokens are bound to their filter. IssueLicense supersedes.
 */
import { Code } from "@connectrpc/connect";
import { DeploymentKind, DeploymentState, LicenseStatus, LockReason } from "@lcp/proto/licensing/v1/types_pb";
import { testDatabases } from "@lcp/testing/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { activateBox, expectRefusal, newBox, provisionOnPrem, startHarness, type LicensingHarness } from "./support.js";

describe.each(testDatabases())("reads ($name)", (tdb) => {
  let h: LicensingHarness;
  beforeAll(async () => {
    h = await startHarness(tdb);
  });
  afterAll(async () => {
    await h?.close();
  });

  it("derives GRACE and LOCKED(OFFLINE) from time alone, and filters agree", async () => {
    const customer = `offline-${Date.now()}`;
    const reader = h.admin("auditor");
    const onboarding = h.admin("onboarding");
    const active = (await onboarding.provisionDeployment({ name: "a", customer, kind: DeploymentKind.ON_PREM })).deployment!;
    const pending = (await onboarding.provisionDeployment({ name: "p", customer, kind: DeploymentKind.ON_PREM })).deployment!;
    const cloud = (await onboarding.provisionDeployment({ name: "c", customer, kind: DeploymentKind.CLOUD })).deployment!;
    expect(cloud.licenseId).toBe("");
    // The token comes from a role that may issue; an auditor never sees it.
    const lic = (await onboarding.getLicense({ licenseId: active.licenseId })).license!;
    await activateBox(h, lic, await newBox(h, active.id));

    const states = async () => {
      const res = await reader.listDeployments({ customer });
      return Object.fromEntries(res.deployments.map((d) => [d.name, [DeploymentState[d.state], LockReason[d.lockReason]]]));
    };
    const filtered = async (state: DeploymentState) =>
      (await reader.listDeployments({ customer, states: [state] })).deployments.map((d) => d.name).sort();

    expect(await states()).toEqual({ a: ["ACTIVE", "UNSPECIFIED"], p: ["PENDING", "UNSPECIFIED"], c: ["PENDING", "UNSPECIFIED"] });
    expect(await filtered(DeploymentState.ACTIVE)).toEqual(["a"]);
    expect(await filtered(DeploymentState.PENDING)).toEqual(["c", "p"]);

    h.clock.advance(10 * 60_000); // past the 5 min heartbeat timeout
    try {
      expect((await states())["a"]).toEqual(["GRACE", "UNSPECIFIED"]);
      expect(await filtered(DeploymentState.GRACE)).toEqual(["a"]);
      expect(await filtered(DeploymentState.ACTIVE)).toEqual([]);
      h.clock.advance(15 * 86_400_000); // past the 14 d grace window
      expect((await states())["a"]).toEqual(["LOCKED", "OFFLINE"]);
      expect(await filtered(DeploymentState.LOCKED)).toEqual(["a"]);
      const got = (await reader.getDeployment({ deploymentId: active.id })).deployment!;
      expect([got.state, got.lockReason]).toEqual([DeploymentState.LOCKED, LockReason.OFFLINE]);
      expect(pending.id).not.toBe(active.id);
    } finally {
      h.clock.advance(-(15 * 86_400_000 + 10 * 60_000));
    }
  });

  it("pages by keyset, with tokens bound to their filter", async () => {
    const customer = `paging-${Date.now()}`;
    const onboarding = h.admin("onboarding");
    for (let i = 0; i < 5; i++) await onboarding.provisionDeployment({ name: `d${i}`, customer, kind: DeploymentKind.ON_PREM });
    const reader = h.admin("auditor");
    const seen: string[] = [];
    let token = "";
    for (;;) {
      const page = await reader.listLicenses({ customer, pageSize: 2, pageToken: token });
      seen.push(...page.licenses.map((l) => l.id));
      if (!page.nextPageToken) break;
      token = page.nextPageToken;
    }
    expect(seen).toHaveLength(5);
    expect(new Set(seen).size).toBe(5);
    const first = await reader.listLicenses({ customer, pageSize: 2 });
    await expectRefusal(reader.listLicenses({ customer: "someone else", pageSize: 2, pageToken: first.nextPageToken }), Code.InvalidArgument, "PAGE_TOKEN_INVALID");
    const deployments = await reader.listDeployments({ customer, pageSize: 3 });
    expect(deployments.deployments).toHaveLength(3);
    const rest = await reader.listDeployments({ customer, pageSize: 3, pageToken: deployments.nextPageToken });
    expect(rest.deployments).toHaveLength(2);
    expect(rest.nextPageToken).toBe("");
  });

  it("IssueLicense supersedes the current licence and carries the binding over", async () => {
    const support = h.admin("support");
    const { deployment, license } = await provisionOnPrem(h);
    const box = await newBox(h, deployment.id, "carried-over");
    await activateBox(h, license, box);
    const renewed = (await support.issueLicense({ deploymentId: deployment.id, entitlements: ["imaging"], term: { seconds: 30n * 86_400n, nanos: 0 } })).license!;
    expect(renewed.status).toBe(LicenseStatus.ACTIVATED);
    expect(renewed.fingerprintHash).toBe((await support.getLicense({ licenseId: license.id })).license!.fingerprintHash);
    expect((await support.getLicense({ licenseId: license.id })).license!.status).toBe(LicenseStatus.SUPERSEDED);
    expect((await support.getDeployment({ deploymentId: deployment.id })).deployment!.licenseId).toBe(renewed.id);
    expect((await support.getDeployment({ deploymentId: deployment.id })).deployment!.state).toBe(DeploymentState.ACTIVE);
    const superseded = await support.listLicenses({ deploymentId: deployment.id, statuses: [LicenseStatus.SUPERSEDED] });
    expect(superseded.licenses.map((l) => l.id)).toEqual([license.id]);
    // The old token no longer activates; acting on the old licence points at the new one.
    await expectRefusal(activateBox(h, license, await newBox(h, deployment.id, "carried-over")), Code.FailedPrecondition, "LICENSE_SUPERSEDED");
    await expectRefusal(support.revokeLicense({ licenseId: license.id, reason: "x" }), Code.FailedPrecondition, "LICENSE_SUPERSEDED");
    // The same box reinstalls with the new token.
    expect((await activateBox(h, renewed, await newBox(h, deployment.id, "carried-over"))).state).toBe(DeploymentState.ACTIVE);
    // A revoked deployment is issued nothing new.
    await support.revokeLicense({ licenseId: renewed.id, reason: "decommissioned" });
    await expectRefusal(support.issueLicense({ deploymentId: deployment.id }), Code.FailedPrecondition, "LICENSE_REVOKED");
  });
});
