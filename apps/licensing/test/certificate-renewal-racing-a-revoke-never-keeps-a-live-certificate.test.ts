/**
 * A box asks for a renewed certificate on its stream and, at the same moment, an operator revokes
 * its licence. The renewal signs its certificate at signing-keys first, then records the serial;
 * it used to record it whatever happened meanwhile, so the revoked deployment kept a serial that
 * still passed mTLS. Now the serial is recorded only while the licence is unrevoked and bound to
 * the admitted box, checked under a compare-and-set in the recording transaction: whichever
 * commits first, the revoked deployment never keeps a usable serial.
 */
import { generateKeyAndCsr, applianceSpiffeId } from "@lcp/pki";
import { testDatabases } from "@lcp/testing/db";
import { metricValue, scrapeMetrics } from "@lcp/testing/metrics";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { beat, helloOf, rawStream, until } from "./heartbeat-support.js";
import { activateBox, newBox, provisionOnPrem, startHarness, type LicensingHarness } from "./support.js";

const ROUNDS = 12;

describe.each(testDatabases())("certificate renewal racing a revoke ($name)", (tdb) => {
  let h: LicensingHarness;
  beforeAll(async () => {
    h = await startHarness(tdb);
  });
  afterAll(async () => {
    await h?.close();
  });

  /** Renewals that have ended (recorded, refused or failed), from licensing's /metrics. */
  const renewalsEnded = async () => {
    const text = await scrapeMetrics(h.licensing.url, h.pki.ca.certPem);
    return ["recorded", "refused", "failed"]
      .map((outcome) => metricValue(text, "licensing_certificate_renewals_total", { outcome }))
      .reduce((sum, v) => sum + (Number.isNaN(v) ? 0 : v), 0);
  };

  it(`in ${ROUNDS} rounds the revoked deployment never keeps a usable serial`, { timeout: 120_000 }, async () => {
    const support = h.admin("support");
    for (let round = 1; round <= ROUNDS; round++) {
      const { license } = await provisionOnPrem(h);
      const box = await newBox(h, license.deploymentId);
      await activateBox(h, license, box);
      const stream = rawStream(h, box);
      stream.send(helloOf(license, box));
      stream.send(beat(1n));
      await until(() => stream.responses.some((r) => r.kind.case === "ack"), "the stream to be admitted");

      const renewal = await generateKeyAndCsr({ commonName: license.deploymentId, spiffeId: applianceSpiffeId(h.pki.trustDomain, license.deploymentId) });
      stream.send({ kind: { case: "renewCertificate", value: { csrPem: renewal.csrPem } } });
      await support.revokeLicense({ licenseId: license.id, reason: `race round ${round}` });
      await until(async () => (await renewalsEnded()) >= round, `renewal ${round} to end`, 10_000);

      const live = await h.sql(`select serial_number from certificate where deployment_id = '${license.deploymentId}' and revoked_at is null`);
      expect(live, `round ${round}: a serial of the revoked deployment is still usable`).toEqual([]);
      stream.abort();
      await stream.ended;
    }
  });
});
