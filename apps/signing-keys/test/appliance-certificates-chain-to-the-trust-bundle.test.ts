/**
 * The appliance CA: a certificate issued from an appliance's CSR verifies against
 * GetApplianceTrustBundle and carries spiffe://<td>/appliance/<deployment-id>; RotateApplianceCa
 * keeps the old CA in the bundle while certificates it issued are still valid; a restart keeps
 * the same CA and keys (they are made at first start only).
 */
import { X509Certificate } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { DurationSchema, timestampDate } from "@bufbuild/protobuf/wkt";
import { certificateUris, generateKeyAndCsr } from "@lcp/pki";
import { chainsTo } from "@lcp/rpc";
import { testDatabases } from "@lcp/testing/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHarness, type SigningKeysHarness } from "./support.js";

describe.each(testDatabases())("appliance certificates ($name)", (tdb) => {
  let h: SigningKeysHarness;
  beforeAll(async () => {
    h = await startHarness(tdb);
  });
  afterAll(async () => {
    await h?.close();
  });

  const bundle = async () => (await h.licensing.getApplianceTrustBundle({})).caCertificatesPem.map((pem) => new X509Certificate(pem));
  const issue = async (deploymentId: string, validitySeconds?: number) => {
    const { csrPem } = await generateKeyAndCsr({ commonName: deploymentId, spiffeId: h.pki.applianceId(deploymentId) });
    return h.licensing.issueApplianceCertificate({
      deploymentId,
      csrPem,
      ...(validitySeconds ? { validity: create(DurationSchema, { seconds: BigInt(validitySeconds) }) } : {}),
    });
  };

  it("issues a certificate that chains to the trust bundle and names the deployment (30 days by default)", async () => {
    const res = await issue("dep-a");
    const cert = new X509Certificate(res.certificatePem);
    const cas = await bundle();
    expect(cas).toHaveLength(1);
    expect(chainsTo([cert], cas)).toBe(true);
    expect(cert.verify(new X509Certificate(res.chainPem[0]!).publicKey)).toBe(true);
    expect(res.spiffeId).toBe("spiffe://lcp.local/appliance/dep-a");
    expect(certificateUris(cert)).toEqual([res.spiffeId]);
    expect(cert.serialNumber.toUpperCase()).toBe(res.serialNumber);
    const lifetimeDays = (timestampDate(res.notAfter!).getTime() - Date.now()) / 86_400_000;
    expect(lifetimeDays).toBeGreaterThan(29.9);
    expect(lifetimeDays).toBeLessThan(30.1);
    // The serial is recorded, so a rebind or revocation can refuse it later.
    const rows = await h.sql<{ deployment_id: string }>(`select deployment_id from issued_certificate where serial_number = '${res.serialNumber}'`);
    expect(rows.map((r) => r.deployment_id)).toEqual(["dep-a"]);
    // Not a CA, client auth only: a box cannot mint identities with it.
    expect(cert.ca).toBe(false);
    expect(cert.keyUsage ?? []).toContain("1.3.6.1.5.5.7.3.2");
  });

  it("honours a requested validity", async () => {
    const res = await issue("dep-b", 3600);
    const lifetime = timestampDate(res.notAfter!).getTime() - Date.now();
    expect(lifetime).toBeGreaterThan(3500_000);
    expect(lifetime).toBeLessThan(3700_000);
  });

  it("keeps the rotated CA in the bundle while its certificates live; new certificates come from the new CA", async () => {
    const old = await issue("dep-c");
    const [oldCa] = await bundle();
    const rotated = await h.admin.rotateApplianceCa({ reason: "yearly" });
    const cas = await bundle();
    expect(cas.map((c) => c.fingerprint256)).toEqual([
      new X509Certificate(rotated.caCertificatePem).fingerprint256,
      oldCa!.fingerprint256,
    ]);
    expect(rotated.trustBundlePem).toEqual((await h.licensing.getApplianceTrustBundle({})).caCertificatesPem);
    expect(chainsTo([new X509Certificate(old.certificatePem)], cas)).toBe(true);

    const fresh = await issue("dep-c");
    const freshCert = new X509Certificate(fresh.certificatePem);
    expect(chainsTo([freshCert], [cas[0]!])).toBe(true);
    expect(chainsTo([freshCert], [oldCa!])).toBe(false);
  });

  it("drops a rotated CA that issued nothing still valid", async () => {
    const before = await bundle();
    await h.admin.rotateApplianceCa({ reason: "first" });
    await h.admin.rotateApplianceCa({ reason: "second" });
    const after = await bundle();
    // The CA between the two rotations never issued a certificate: nobody needs to trust it.
    expect(after).toHaveLength(before.length + 1);
    expect(after.slice(1).map((c) => c.fingerprint256)).toEqual(before.map((c) => c.fingerprint256));
  });

  it("keeps the same CA and keys across a restart", async () => {
    const cas = (await bundle()).map((c) => c.fingerprint256);
    const kids = (await h.anonymous.getJwks({})).kids;
    await h.restart();
    expect((await bundle()).map((c) => c.fingerprint256)).toEqual(cas);
    expect((await h.anonymous.getJwks({})).kids).toEqual(kids);
    const res = await issue("dep-d");
    expect(chainsTo([new X509Certificate(res.certificatePem)], await bundle())).toBe(true);
  });
});
