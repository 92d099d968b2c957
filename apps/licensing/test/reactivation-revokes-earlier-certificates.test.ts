/**
 * A box that activates again (a reinstall: new keys, same fingerprint) gets a new certificate, and
 * the certificates issued to it before are revoked in the same transaction: a copy of the old key
 * (an old disk image, a cloned VM) no longer authenticates SendHeartbeat or the stream.
 */
import { Code } from "@connectrpc/connect";
import { DeploymentState } from "@lcp/proto/licensing/v1/types_pb";
import { testDatabases } from "@lcp/testing/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { activateBox, expectRefusal, newBox, provisionOnPrem, startHarness, type Box, type LicensingHarness } from "./support.js";

describe.each(testDatabases())("re-activation revokes earlier certificates ($name)", (tdb) => {
  let h: LicensingHarness;
  beforeAll(async () => {
    h = await startHarness(tdb);
  });
  afterAll(async () => {
    await h?.close();
  });

  const beat = (box: Box, licenseId: string) => h.applianceClient(box).sendHeartbeat({ licenseId, fingerprint: box.fingerprint });

  it("only the newest activation's certificate authenticates", async () => {
    const { license } = await provisionOnPrem(h);
    const first = await newBox(h, license.deploymentId, "reinstalled-box");
    await activateBox(h, license, first);
    expect((await beat(first, license.id)).state).toBe(DeploymentState.ACTIVE);

    // The same box (same fingerprint) reinstalled twice, each time with a new key.
    const second = await newBox(h, license.deploymentId, first.fingerprint);
    await activateBox(h, license, second);
    const third = await newBox(h, license.deploymentId, first.fingerprint);
    await activateBox(h, license, third);

    await expectRefusal(beat(first, license.id), Code.Unauthenticated);
    await expectRefusal(beat(second, license.id), Code.Unauthenticated);
    expect((await beat(third, license.id)).state).toBe(DeploymentState.ACTIVE);
    const live = await h.sql(`select serial_number from certificate where deployment_id = '${license.deploymentId}' and revoked_at is null`);
    expect(live).toHaveLength(1);
  });
});
