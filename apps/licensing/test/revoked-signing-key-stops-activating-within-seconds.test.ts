/**
 * A signing key revoked in signing-keys stops verifying licence tokens in licensing within
 * JWKS_MAX_AGE (shrunk here to 300 ms; 5 s by default): a licence issued before the revocation,
 * signed by the revoked key and not yet activated, is refused InvalidArgument TOKEN_UNKNOWN_KEY
 * (the operator re-issues it), while a licence issued after it activates. Licensing had fetched
 * the JWKS before the revocation (another activation), the cache an unbounded one would keep.
 */
import { Code } from "@connectrpc/connect";
import { testDatabases } from "@lcp/testing/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kidOf, rotateAndRevoke } from "./signing-admin.js";
import { activateBox, expectRefusal, newBox, provisionOnPrem, startHarness, type LicensingHarness } from "./support.js";

const MAX_AGE_MS = 300;

describe.each(testDatabases())("a revoked signing key stops activating licences ($name)", (tdb) => {
  let h: LicensingHarness;
  beforeAll(async () => {
    h = await startHarness(tdb, { jwksMaxAgeMs: MAX_AGE_MS });
  });
  afterAll(async () => {
    await h?.close();
  });

  it("refuses a licence token signed by the revoked key within the max age, and activates one signed after", async () => {
    // Licensing fetches and caches the JWKS while the old key is good.
    const warm = await provisionOnPrem(h);
    await activateBox(h, warm.license, await newBox(h, warm.deployment.id));
    const stale = await provisionOnPrem(h);

    const { revoked, active } = await rotateAndRevoke(h);
    expect(kidOf(stale.license.token)).toBe(revoked);
    await new Promise((r) => setTimeout(r, MAX_AGE_MS + 100));

    const box = await newBox(h, stale.deployment.id);
    const error = await expectRefusal(activateBox(h, stale.license, box), Code.InvalidArgument, "TOKEN_UNKNOWN_KEY");
    expect(error.rawMessage).toMatch(/revoked|re-?issue/i);
    expect(await h.sql(`select serial_number from certificate where deployment_id = '${stale.deployment.id}'`)).toEqual([]);

    // The operator re-issues: the new licence is signed by the new ACTIVE key and activates.
    const fresh = await provisionOnPrem(h);
    expect(kidOf(fresh.license.token)).toBe(active);
    const activation = await activateBox(h, fresh.license, await newBox(h, fresh.deployment.id));
    expect(kidOf(activation.leaseToken)).toBe(active);
    expect(JSON.parse(activation.jwksJson).keys.map((k: { kid: string }) => k.kid)).not.toContain(revoked);
  });
});
