/**
 * "Choose New license" on a deployment whose box is running: IssueLicense supersedes the current
 * licence and carries the binding over, so the box must carry on under the new licence — its
 * next leases name the new licence id (with that licence's own seq), and the SDK adopts them
 * instead of refusing them and locking when its last lease of the old licence runs out. A host
 * restarted with the licence id it was installed with (its configuration is not rewritten) or
 * with the new one reads its state file and streams on.
 */
import { DeploymentState } from "@lcp/proto/licensing/v1/types_pb";
import { testDatabases } from "@lcp/testing/db";
import { createAppliance, type ApplianceOptions, type LeaseRejectedEvent, type StateChangeEvent } from "@lcp/appliance-sdk";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FAST, setSettings, until } from "./heartbeat-support.js";
import { provisionOnPrem, startHarness, TEST_ISSUER, type LicensingHarness } from "./support.js";

describe.each(testDatabases())("a renewed licence keeps a streaming box running ($name)", (tdb) => {
  let h: LicensingHarness;
  let dir: string;
  const running: Array<{ stop(): Promise<void> }> = [];
  beforeAll(async () => {
    h = await startHarness(tdb);
    dir = await mkdtemp(join(tmpdir(), "lcp-renewed-license-"));
    await setSettings(h, FAST);
  });
  afterAll(async () => {
    for (const box of running) await box.stop().catch(() => undefined);
    await h?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("adopts the new licence's leases, stays ACTIVE past the old lease's expiry, and survives a restart", async () => {
    const { deployment, license } = await provisionOnPrem(h);
    const options: ApplianceOptions = {
      baseUrl: h.licensing.url,
      caPem: h.pki.ca.certPem,
      licenseId: license.id,
      licenseToken: license.token,
      fingerprint: `renewed-${randomBytes(4).toString("hex")}`,
      stateFile: join(dir, "box.json"),
      issuer: TEST_ISSUER,
      trustDomain: h.pki.trustDomain,
      backoff: { initialMs: 50, maxMs: 250 },
      evaluateEveryMs: 25,
    };
    const box = await createAppliance(options);
    running.push(box);
    const rejected: LeaseRejectedEvent[] = [];
    const states: StateChangeEvent[] = [];
    box.on("lease-rejected", (e) => rejected.push(e));
    box.on("state", (e) => states.push(e));
    await box.activate();
    box.start();
    await until(() => box.status().connected, "the stream to be healthy");
    const oldLeaseExpiry = box.status().leaseExpiresAt!;

    const renewed = (await h.admin("support").issueLicense({ deploymentId: deployment.id, term: { seconds: 30n * 86_400n, nanos: 0 } })).license!;
    await until(() => box.status().licenseId === renewed.id, "the box to adopt the renewed licence", FAST.leaseRenewAfterMs + 3_000);
    // The new licence counts its own leases; the box's seq follows it.
    expect(box.status().leaseSeq).toBeGreaterThanOrEqual(1);
    // Past the expiry of the last lease of the old licence: still ACTIVE, never anything else.
    await until(() => Date.now() > oldLeaseExpiry + 500, "the old lease's expiry", FAST.graceWindowMs + 2_000);
    expect(box.state()).toEqual({ state: "ACTIVE" });
    expect(states.map((s) => s.state)).toEqual(["ACTIVE"]);
    expect(rejected).toEqual([]);
    expect((await h.admin("support").getDeployment({ deploymentId: deployment.id })).deployment!.state).toBe(DeploymentState.ACTIVE);

    // The host restarts with its original configuration (the licence it was installed with), and
    // another time configured with the new licence: both read the same state file and stream on.
    await box.stop();
    for (const { id: licenseId, token: licenseToken } of [license, renewed]) {
      const again = await createAppliance({ ...options, licenseId, licenseToken });
      running.push(again);
      expect(again.isActivated()).toBe(true);
      expect(again.status().licenseId).toBe(renewed.id);
      again.start();
      await until(() => again.status().connected, `the restarted box (configured with ${licenseId === license.id ? "the old" : "the new"} licence) to stream`);
      expect(again.state()).toEqual({ state: "ACTIVE" });
      await again.stop();
    }
  });
});
