/**
 * Roles (docs/design.md §3): onboarding may provision and issue but not revoke; support may revoke and
 * rebind; only super_admin may update settings; auditor reads only. Refusals are PermissionDenied
 * and change nothing; a refusal repeated in a loop is audited once, then as a count.
 */
import { Code } from "@connectrpc/connect";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { LicensingService } from "@lcp/proto/licensing/v1/licensing_service_pb";
import { DeploymentKind } from "@lcp/proto/licensing/v1/types_pb";
import { createClient } from "@lcp/rpc";
import { testDatabases } from "@lcp/testing/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectRefusal, provisionOnPrem, snapshot, startHarness, type LicensingHarness } from "./support.js";

/** A licensing client with neither certificate nor token. */
const anonymousTo = (h: LicensingHarness) => createClient(LicensingService, { baseUrl: h.licensing.url, tls: { caPem: h.pki.ca.certPem }, retries: 0 });

describe.each(testDatabases())("roles ($name)", (tdb) => {
  let h: LicensingHarness;
  beforeAll(async () => {
    h = await startHarness(tdb);
  });
  afterAll(async () => {
    await h?.close();
  });

  const settingsUpdate = (graceMs: number) => ({
    settings: { graceWindow: durationFromMs(graceMs) },
    updateMask: { paths: ["grace_window"] },
  });

  it("onboarding provisions and issues, but may not revoke, rebind or tune settings", async () => {
    const onboarding = h.admin("onboarding");
    const { deployment, license } = await provisionOnPrem(h);
    const issued = await onboarding.issueLicense({ deploymentId: deployment.id, entitlements: ["imaging"] });
    expect(issued.license!.deploymentId).toBe(deployment.id);
    const before = await snapshot(h);
    await expectRefusal(onboarding.revokeLicense({ licenseId: issued.license!.id, reason: "no" }), Code.PermissionDenied);
    await expectRefusal(onboarding.rebindLicense({ licenseId: license.id, newFingerprint: "x", reason: "no" }), Code.PermissionDenied);
    await expectRefusal(onboarding.updateSettings(settingsUpdate(7 * 86_400_000)), Code.PermissionDenied);
    await expectRefusal(onboarding.setSubscriptionStatus({ deploymentId: deployment.id, status: 2 }), Code.PermissionDenied);
    const after = await snapshot(h);
    // Only authz.denied events were added; no row of the deployment or licence changed.
    for (const table of ["deployment", "license", "settings", "certificate", "directive"]) expect(after[table]).toBe(before[table]);
  });

  it("support revokes and rebinds, but may not tune settings", async () => {
    const support = h.admin("support");
    const a = await provisionOnPrem(h);
    const b = await provisionOnPrem(h);
    await support.rebindLicense({ licenseId: a.license.id, newFingerprint: "replacement", reason: "mainboard replaced" });
    await support.revokeLicense({ licenseId: b.license.id, reason: "decommissioned" });
    await expectRefusal(support.updateSettings(settingsUpdate(7 * 86_400_000)), Code.PermissionDenied);
  });

  it("only super_admin updates settings", async () => {
    const updated = await h.admin("super_admin").updateSettings(settingsUpdate(7 * 86_400_000));
    expect(updated.settings!.graceWindow!.seconds).toBe(7n * 86_400n);
    expect((await h.admin("auditor").getSettings({})).settings!.graceWindow!.seconds).toBe(7n * 86_400n);
  });

  it("auditor reads only", async () => {
    const auditor = h.admin("auditor");
    const { deployment, license } = await provisionOnPrem(h);
    expect((await auditor.getDeployment({ deploymentId: deployment.id })).deployment!.id).toBe(deployment.id);
    expect((await auditor.getLicense({ licenseId: license.id })).license!.id).toBe(license.id);
    expect((await auditor.listLicenses({})).licenses.length).toBeGreaterThan(0);
    expect((await auditor.listDeployments({})).deployments.length).toBeGreaterThan(0);
    await expectRefusal(auditor.provisionDeployment({ name: "x", customer: "y", kind: DeploymentKind.CLOUD }), Code.PermissionDenied);
    await expectRefusal(auditor.issueLicense({ deploymentId: deployment.id }), Code.PermissionDenied);
    await expectRefusal(auditor.revokeLicense({ licenseId: license.id, reason: "no" }), Code.PermissionDenied);
    await expectRefusal(auditor.rebindLicense({ licenseId: license.id, reason: "no" }), Code.PermissionDenied);
    await expectRefusal(auditor.setSubscriptionStatus({ deploymentId: deployment.id, status: 2 }), Code.PermissionDenied);
    await expectRefusal(auditor.updateSettings(settingsUpdate(86_400_000)), Code.PermissionDenied);
    const denied = await h.sql<{ action: string }>("select action from outbox_event where action = 'authz.denied'");
    expect(denied.length).toBeGreaterThanOrEqual(6);
  });

  it("callers without credentials are Unauthenticated", async () => {
    const anonymous = anonymousTo(h);
    await expectRefusal(anonymous.listLicenses({}), Code.Unauthenticated);
  });

  it("a refusal repeated in a loop is audited once, not once a call (its repeats are counted into one later event)", async () => {
    const anonymous = anonymousTo(h);
    const audited = async () =>
      (await h.sql<{ payload: string }>("select payload from outbox_event where action = 'authz.denied'")).filter((r) => r.payload.includes("/GetSettings")).length;
    const before = await audited();
    for (let i = 0; i < 25; i++) await expectRefusal(anonymous.getSettings({}), Code.Unauthenticated);
    expect((await audited()) - before).toBe(1);
  });

  it("with a denied-audit window of 0 (DENIED_AUDIT_WINDOW=0s) every refusal is audited on its own", async () => {
    const strict = await startHarness(tdb, { deniedAuditWindowMs: 0 });
    try {
      const anonymous = anonymousTo(strict);
      for (let i = 0; i < 3; i++) await expectRefusal(anonymous.getSettings({}), Code.Unauthenticated);
      const rows = await strict.sql<{ payload: string }>("select payload from outbox_event where action = 'authz.denied'");
      expect(rows.filter((r) => r.payload.includes("/GetSettings"))).toHaveLength(3);
    } finally {
      await strict.close();
    }
  });
});
