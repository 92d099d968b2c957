/**
 * The licence token is the one credential Activate needs for an unbound licence: an auditor that
 * could read it could activate the licence on its own box and lock the real one out. GetLicense and
 * ListLicenses (license.read) show token and fingerprint hash only to callers that may issue
 * licences; read-only roles get them empty, and the token they never saw activates nothing.
 */
import { Code } from "@connectrpc/connect";
import type { License } from "@lcp/proto/licensing/v1/types_pb";
import { testDatabases } from "@lcp/testing/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { activateBox, expectRefusal, newBox, provisionOnPrem, startHarness, type LicensingHarness } from "./support.js";

describe.each(testDatabases())("read-only roles never see licence tokens or fingerprints ($name)", (tdb) => {
  let h: LicensingHarness;
  beforeAll(async () => {
    h = await startHarness(tdb);
  });
  afterAll(async () => {
    await h?.close();
  });

  /** What each role gets back for `license` from GetLicense and from ListLicenses. */
  async function seenBy(roles: string | string[], license: License): Promise<License[]> {
    const client = h.admin(...[roles].flat());
    const got = (await client.getLicense({ licenseId: license.id })).license!;
    const listed = (await client.listLicenses({ deploymentId: license.deploymentId })).licenses.find((l) => l.id === license.id)!;
    return [got, listed];
  }

  it("an auditor gets an unbound licence without its token, and cannot activate it", async () => {
    const { license } = await provisionOnPrem(h);
    expect(license.token, "the issuer sees the token it issued").not.toBe("");
    for (const shown of await seenBy("auditor", license)) {
      expect(shown.token).toBe("");
      expect(shown.id).toBe(license.id);
      expect(shown.kid).toBe(license.kid);
    }
    const intruder = await newBox(h, license.deploymentId, "auditor-box");
    const attempt = h.anonymousAppliance.activate({
      licenseId: license.id,
      licenseToken: (await seenBy("auditor", license))[0]!.token,
      fingerprint: intruder.fingerprint,
      csrPem: intruder.csrPem,
    });
    await expectRefusal(attempt, Code.InvalidArgument);
    // The real box, with the token it was shipped with, still binds.
    await activateBox(h, license, await newBox(h, license.deploymentId, "real-box"));
  });

  it("an auditor does not see which box a licence is bound to; roles that may issue do", async () => {
    const { license } = await provisionOnPrem(h);
    await activateBox(h, license, await newBox(h, license.deploymentId, "bound-box"));
    for (const shown of await seenBy("auditor", license)) {
      expect(shown.fingerprintHash).toBe("");
      expect(shown.token).toBe("");
    }
    for (const role of ["onboarding", "support", "super_admin"]) {
      for (const shown of await seenBy(role, license)) {
        expect(shown.token, role).toBe(license.token);
        expect(shown.fingerprintHash, role).toMatch(/^[0-9a-f]{64}$/);
      }
    }
  });

  it("a role name that grants no license.issue does not unlock the token", async () => {
    const { license } = await provisionOnPrem(h);
    // An unknown role beside auditor adds no permission: the view follows permissions, not names.
    for (const shown of await seenBy(["auditor", "license_admin"], license)) expect(shown.token).toBe("");
  });
});
