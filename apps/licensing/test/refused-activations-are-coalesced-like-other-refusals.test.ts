/**
 * A refusal costs the caller nothing: Activate is public, so one anonymous client looping on a
 * bad licence token wrote one permanent audit row per call. Handlers' refusals (Activate's and
 * every other command's: revoke, rebind, issue …) now go through the same denied-audit window as
 * the server's authz.denied events: the first of a kind is written in full before the caller is
 * answered, its repeats become one more event carrying their count when the window closes.
 */
import { Code } from "@connectrpc/connect";
import { testDatabases } from "@lcp/testing/db";
import { afterEach, describe, expect, it } from "vitest";
import { auditEvents, expectRefusal, newBox, provisionOnPrem, startHarness, type LicensingHarness } from "./support.js";

/** Long enough that a loop under load stays in one window; the summary is forced by shutdown. */
const WINDOW_MS = 60_000;
const LOOP = 25;

describe.each(testDatabases())("refused activations are coalesced like other refusals ($name)", (tdb) => {
  let h: LicensingHarness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  const denied = async (harness: LicensingHarness, action: string) =>
    (await auditEvents(harness)).filter((e) => e.action === action && e.outcome === "OUTCOME_DENIED");

  it("a loop of refused activations is one audit row, then one row with its count", async () => {
    const harness = (h = await startHarness(tdb, { deniedAuditWindowMs: WINDOW_MS }));
    const { license } = await provisionOnPrem(harness);
    const box = await newBox(harness, license.deploymentId);
    const attempt = () =>
      harness.anonymousAppliance.activate({ licenseId: license.id, licenseToken: "not.a.token", fingerprint: box.fingerprint, csrPem: box.csrPem });
    await expectRefusal(attempt(), Code.InvalidArgument);
    // The first refusal is in the trail before the caller hears of it.
    expect(await denied(harness, "license.activate")).toHaveLength(1);
    for (let i = 1; i < LOOP; i++) await expectRefusal(attempt(), Code.InvalidArgument);
    expect(await denied(harness, "license.activate")).toHaveLength(1);

    // The window still open at shutdown is summarised before the database closes.
    await harness.licensing.close();
    const [first, summary] = await denied(harness, "license.activate");
    expect(first!.details.repeated).toBeUndefined();
    expect(first!.resourceId).toBe(license.id);
    expect(summary!.details).toMatchObject({ code: first!.details.code, repeated: { count: LOOP - 1 } });
  });

  it("an operator's refused command repeated in a loop is coalesced the same way", async () => {
    const harness = (h = await startHarness(tdb, { deniedAuditWindowMs: WINDOW_MS }));
    const { license } = await provisionOnPrem(harness);
    const support = harness.admin("support");
    await support.revokeLicense({ licenseId: license.id, reason: "decommissioned" });
    for (let i = 0; i < LOOP; i++) {
      await expectRefusal(support.revokeLicense({ licenseId: license.id, reason: "again" }), Code.FailedPrecondition);
    }
    expect(await denied(harness, "license.revoke")).toHaveLength(1);
    await harness.licensing.close();
    expect((await denied(harness, "license.revoke"))[1]!.details).toMatchObject({ repeated: { count: LOOP - 1 } });
  });
});
