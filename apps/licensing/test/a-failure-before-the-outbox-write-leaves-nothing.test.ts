/**
 * Atomicity ("no change without its record", docs/design.md §7): a failure injected inside the
 * transaction after the state change is written and before its audit event goes to the outbox
 * leaves neither the change nor the event — for every kind of change.
 */
import { Code } from "@connectrpc/connect";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { DeploymentKind, DeploymentState, SubscriptionStatus } from "@lcp/proto/licensing/v1/types_pb";
import { testDatabases } from "@lcp/testing/db";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { activateBox, expectRefusal, newBox, provisionOnPrem, snapshot, startHarness, type LicensingHarness } from "./support.js";

describe.each(testDatabases())("atomicity ($name)", (tdb) => {
  let h: LicensingHarness;
  beforeAll(async () => {
    h = await startHarness(tdb);
  });
  afterEach(() => {
    h.fault = undefined;
  });
  afterAll(async () => {
    await h?.close();
  });

  /** Runs `change` with a fault after its state change; proves nothing at all was written, then that it works without the fault. */
  async function provesAtomic(action: string, change: () => Promise<unknown>): Promise<void> {
    const before = await snapshot(h);
    let injected = 0;
    h.fault = (info) => {
      if (info.action === action) {
        injected++;
        throw new Error(`injected failure before the outbox write of ${action}`);
      }
    };
    const err = await expectRefusal(change(), Code.Internal);
    expect(err.message).not.toContain("injected"); // the cause is logged, never sent
    expect(injected).toBe(1);
    expect(await snapshot(h)).toEqual(before);
    h.fault = undefined;
    await change();
    expect(await snapshot(h)).not.toEqual(before);
  }

  it("provision", async () => {
    await provesAtomic("deployment.provision", () =>
      h.admin("onboarding").provisionDeployment({ name: "atomic", customer: "c", kind: DeploymentKind.ON_PREM }),
    );
  });

  it("issue, activate, subscription, rebind and revoke", async () => {
    const support = h.admin("support");
    const { deployment, license } = await provisionOnPrem(h);
    await provesAtomic("license.issue", () => support.issueLicense({ deploymentId: deployment.id, entitlements: ["x"] }));
    const current = (await support.getDeployment({ deploymentId: deployment.id })).deployment!.licenseId;
    const lic = (await support.getLicense({ licenseId: current })).license!;
    expect(lic.id).not.toBe(license.id);

    const box = await newBox(h, deployment.id, "atomic-box");
    await provesAtomic("license.activate", () => activateBox(h, lic, box));
    expect((await support.getDeployment({ deploymentId: deployment.id })).deployment!.state).toBe(DeploymentState.ACTIVE);

    await provesAtomic("subscription.update", () =>
      support.setSubscriptionStatus({ deploymentId: deployment.id, status: SubscriptionStatus.INVALID, reason: "unpaid" }),
    );
    expect((await support.getDeployment({ deploymentId: deployment.id })).deployment!.state).toBe(DeploymentState.SUSPENDED);

    await provesAtomic("license.rebind", () => support.rebindLicense({ licenseId: lic.id, newFingerprint: "other", reason: "swap" }));
    await provesAtomic("license.revoke", () => support.revokeLicense({ licenseId: lic.id, reason: "stolen" }));
    expect((await support.getDeployment({ deploymentId: deployment.id })).deployment!.state).toBe(DeploymentState.LOCKED);
  });

  it("settings", async () => {
    await provesAtomic("settings.update", () =>
      h.admin("super_admin").updateSettings({ settings: { heartbeatInterval: durationFromMs(30_000) }, updateMask: { paths: ["heartbeat_interval"] } }),
    );
  });
});
