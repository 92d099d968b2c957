import { describe, it, expect } from "vitest";
import { LicensingService } from "@lcp/proto/licensing/v1/licensing_service_pb";
import { DeploymentKind, DeploymentState, LockReason } from "@lcp/proto/licensing/v1/types_pb";
import { startCluster } from "../support/cluster.js";
import { applianceFor, heartbeatOf, shrinkSettings } from "../support/story.js";

describe("debug", () => {
  it.each([1, 2])("replicas %i", async (n) => {
    const c = await startCluster({ databaseUrl: process.env.DATABASE_URL, replicas: { licensing: n }, env: { LOG_LEVEL: "info" } });
    try {
      await shrinkSettings(c);
      const made = await c.adminClient(LicensingService, "onboarding").provisionDeployment({ name: "d", customer: "c", kind: DeploymentKind.ON_PREM });
      const box = await applianceFor(c, made.license!, "fp1");
      await box.activate();
      box.start();
      for (let i = 0; i < 10; i++) {
        await new Promise((r) => setTimeout(r, 1000));
        const d = (await c.adminClient(LicensingService, "support").getDeployment({ deploymentId: made.deployment!.id })).deployment!;
        const hb = await heartbeatOf(c, made.deployment!.id);
        console.log(n, i, DeploymentState[d.state], LockReason[d.lockReason], hb?.connected, hb?.replica, hb?.lagMs);
      }
      await box.stop();
    } finally {
      await c.stop();
    }
  }, 120_000);
});
