/**
 * RebindLicense with an empty new_fingerprint unbinds: "the next box to activate binds" (proto).
 * The box the licence was moved off still holds the licence token; it must not be that next box,
 * or an unbind would hand the licence straight back to the hardware it was taken from. While
 * unbound, every box a rebind moved off is refused FINGERPRINT_MISMATCH; a new box binds; and a
 * rebind that names the old box explicitly moves the licence back. Rebinding to the fingerprint
 * already bound (or unbinding an unbound licence) is refused and changes nothing.
 */
import { Code } from "@connectrpc/connect";
import { testDatabases } from "@lcp/testing/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { activateBox, expectRefusal, newBox, provisionOnPrem, snapshot, startHarness, type LicensingHarness } from "./support.js";

describe.each(testDatabases())("rebind locks out the old box ($name)", (tdb) => {
  let h: LicensingHarness;
  beforeAll(async () => {
    h = await startHarness(tdb);
  });
  afterAll(async () => {
    await h?.close();
  });

  it("after an unbind the old box cannot activate; a new box can", async () => {
    const support = h.admin("support");
    const { license } = await provisionOnPrem(h);
    const old = await newBox(h, license.deploymentId, "old-box");
    await activateBox(h, license, old);
    await support.rebindLicense({ licenseId: license.id, newFingerprint: "", reason: "box stolen" });

    // The old box, with its token and even a fresh key, is refused while the licence is unbound.
    await expectRefusal(activateBox(h, license, await newBox(h, license.deploymentId, old.fingerprint)), Code.FailedPrecondition, "FINGERPRINT_MISMATCH");
    const bound = await h.sql<{ fingerprint_hash: string | null }>(`select fingerprint_hash from deployment where id = '${license.deploymentId}'`);
    expect(bound[0]!.fingerprint_hash).toBeNull();

    const replacement = await newBox(h, license.deploymentId, "replacement-box");
    await activateBox(h, license, replacement);
    await expectRefusal(activateBox(h, license, await newBox(h, license.deploymentId, old.fingerprint)), Code.FailedPrecondition, "FINGERPRINT_MISMATCH");
  });

  it("a box moved off by an earlier rebind stays out after a later unbind", async () => {
    const support = h.admin("support");
    const { license } = await provisionOnPrem(h);
    const a = await newBox(h, license.deploymentId, "box-a");
    await activateBox(h, license, a);
    await support.rebindLicense({ licenseId: license.id, newFingerprint: "box-b", reason: "mainboard replaced" });
    await activateBox(h, license, await newBox(h, license.deploymentId, "box-b"));
    await support.rebindLicense({ licenseId: license.id, newFingerprint: "", reason: "box-b returned" });
    for (const fingerprint of ["box-a", "box-b"]) {
      await expectRefusal(activateBox(h, license, await newBox(h, license.deploymentId, fingerprint)), Code.FailedPrecondition, "FINGERPRINT_MISMATCH");
    }
    // Naming the old box explicitly is the operator's way back.
    await support.rebindLicense({ licenseId: license.id, newFingerprint: "box-a", reason: "box-a repaired" });
    await activateBox(h, license, await newBox(h, license.deploymentId, "box-a"));
  });

  it("rebinding to the bound fingerprint, or unbinding twice, is refused and changes nothing", async () => {
    const support = h.admin("support");
    const { license } = await provisionOnPrem(h);
    await activateBox(h, license, await newBox(h, license.deploymentId, "same-box"));
    const before = await snapshot(h);
    await expectRefusal(support.rebindLicense({ licenseId: license.id, newFingerprint: "same-box", reason: "no-op" }), Code.FailedPrecondition, "SAME_FINGERPRINT");
    const after = await snapshot(h);
    for (const table of ["deployment", "license", "certificate", "directive"]) expect(after[table]).toBe(before[table]);
    await support.rebindLicense({ licenseId: license.id, newFingerprint: "", reason: "unbind" });
    await expectRefusal(support.rebindLicense({ licenseId: license.id, newFingerprint: "", reason: "unbind again" }), Code.FailedPrecondition, "SAME_FINGERPRINT");
  });
});
