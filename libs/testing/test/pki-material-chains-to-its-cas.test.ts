import { X509Certificate } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createTestPki } from "../src/pki.js";

describe("createTestPki", () => {
  it("issues service certificates from the CA and appliance certificates from the separate appliance CA", async () => {
    const pki = await createTestPki();
    const ca = new X509Certificate(pki.ca.certPem);
    const applianceCa = new X509Certificate(pki.applianceCa.certPem);
    const foreignCa = new X509Certificate(pki.foreignCa.certPem);

    const licensing = new X509Certificate((await pki.service("licensing")).certPem);
    expect(licensing.checkIssued(ca)).toBe(true);
    expect(licensing.verify(ca.publicKey)).toBe(true);
    expect(licensing.subjectAltName).toContain("URI:spiffe://lcp.local/service/licensing");
    expect(await pki.serverFor("licensing")).toBe(await pki.service("licensing"));

    const box = await pki.appliance("dep-1");
    const boxCert = new X509Certificate(box.certPem);
    expect(boxCert.checkIssued(applianceCa)).toBe(true);
    expect(boxCert.checkIssued(ca)).toBe(false);
    expect(boxCert.serialNumber.toUpperCase()).toBe(box.serialNumber);
    expect(boxCert.subjectAltName).toBe("URI:spiffe://lcp.local/appliance/dep-1");
    expect(await pki.appliance("dep-1")).toBe(box);
    expect((await pki.appliance("dep-1", { validityMs: 60_000 })).serialNumber).not.toBe(box.serialNumber);

    const foreign = new X509Certificate((await pki.foreignService("licensing")).certPem);
    expect(foreign.checkIssued(foreignCa)).toBe(true);
    expect(foreign.checkIssued(ca)).toBe(false);
    expect(foreign.subjectAltName).toContain("URI:spiffe://lcp.local/service/licensing");
  });

  it("shares material per trust domain within a process", async () => {
    expect(await createTestPki()).toBe(await createTestPki({ trustDomain: "lcp.local" }));
    const other = await createTestPki({ trustDomain: "other.test" });
    expect(other.ca.certPem).not.toBe((await createTestPki()).ca.certPem);
    expect(new X509Certificate((await other.service("audit")).certPem).subjectAltName).toContain("spiffe://other.test/service/audit");
  });
});
