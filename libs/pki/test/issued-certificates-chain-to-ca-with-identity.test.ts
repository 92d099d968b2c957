import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { X509Certificate } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import {
  createCertificateAuthority,
  generateKeyAndCsr,
  issueCertificateFromCsr,
  issueServerAndServiceCertificate,
  loadCertificateAuthority,
  certificateUris,
  type CertificateAuthority,
  type PemKeyPair,
} from "../src/index.js";

const SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";

let caPair: PemKeyPair;
let ca: CertificateAuthority;
let caCert: X509Certificate;
const now = new Date("2030-01-01T00:00:00Z");

beforeAll(async () => {
  caPair = await createCertificateAuthority({ commonName: "test CA", validityDays: 3650, now });
  ca = await loadCertificateAuthority(caPair);
  caCert = new X509Certificate(caPair.certPem);
});

describe("certificate authority", () => {
  it("is a self-signed CA with critical basicConstraints and certificate-signing key usage", () => {
    expect(caCert.ca).toBe(true);
    expect(caCert.checkIssued(caCert)).toBe(true);
    expect(caCert.verify(caCert.publicKey)).toBe(true);
    expect(caCert.subject).toBe("CN=test CA");
    const parsed = new x509.X509Certificate(caPair.certPem);
    const bc = parsed.getExtension(x509.BasicConstraintsExtension)!;
    expect(bc.ca).toBe(true);
    expect(bc.critical).toBe(true);
    const ku = parsed.getExtension(x509.KeyUsagesExtension)!;
    expect(ku.usages).toBe(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
    expect(caPair.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
  });

  it("refuses a key that does not belong to the certificate, and a non-CA certificate", async () => {
    const other = await createCertificateAuthority({ commonName: "other", validityDays: 1 });
    await expect(loadCertificateAuthority({ certPem: caPair.certPem, keyPem: other.keyPem })).rejects.toThrow(/does not match/);
    const leaf = await issueServerAndServiceCertificate(ca, { service: "audit", trustDomain: "lcp.local", validityDays: 1 });
    await expect(loadCertificateAuthority(leaf)).rejects.toThrow(/not a CA/);
  });
});

describe("server and service certificate", () => {
  it("chains to the CA and serves as both TLS server (DNS/IP SANs) and service client (SPIFFE URI)", async () => {
    const pair = await issueServerAndServiceCertificate(ca, {
      service: "licensing",
      trustDomain: "lcp.local",
      hosts: ["localhost", "127.0.0.1", "::1"],
      validityDays: 30,
      now,
    });
    const cert = new X509Certificate(pair.certPem);
    expect(cert.checkIssued(caCert)).toBe(true);
    expect(cert.verify(caCert.publicKey)).toBe(true);
    expect(cert.ca).toBe(false);
    expect(cert.subject).toBe("CN=licensing");
    expect(cert.subjectAltName).toBe("DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, URI:spiffe://lcp.local/service/licensing");
    expect(certificateUris(cert)).toEqual(["spiffe://lcp.local/service/licensing"]);
    expect(cert.keyUsage.sort()).toEqual([SERVER_AUTH, CLIENT_AUTH].sort());
    expect(cert.checkHost("localhost")).toBe("localhost");
    expect(cert.checkIP("127.0.0.1")).toBe("127.0.0.1");
    expect(cert.serialNumber).toMatch(/^[4-7][0-9A-F]{31}$/);
    expect(new Date(cert.validTo).getTime()).toBe(now.getTime() + 30 * 86_400_000);
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
  });

  it("gives every certificate a distinct random serial", async () => {
    const serials = new Set<string>();
    for (let i = 0; i < 5; i++) {
      const pair = await issueServerAndServiceCertificate(ca, { service: "audit", trustDomain: "lcp.local", validityDays: 1 });
      serials.add(new X509Certificate(pair.certPem).serialNumber);
    }
    expect(serials.size).toBe(5);
  });
});

describe("certificate from a CSR", () => {
  it.each(["P-256", "Ed25519"] as const)("issues a clientAuth-only certificate bound to the SPIFFE id (%s key)", async (algorithm) => {
    const spiffeId = "spiffe://lcp.local/appliance/dep-42";
    const { csrPem } = await generateKeyAndCsr({ spiffeId, commonName: "whatever-the-box-says", algorithm });
    const issued = await issueCertificateFromCsr(ca, { csrPem, spiffeId, validityMs: 86_400_000, now });
    if (!issued.ok) throw new Error(issued.message);
    const cert = new X509Certificate(issued.certPem);
    expect(cert.checkIssued(caCert)).toBe(true);
    expect(cert.verify(caCert.publicKey)).toBe(true);
    expect(cert.ca).toBe(false);
    // The CA decides the subject; the CSR's subject is ignored.
    expect(cert.subject).toBe("CN=dep-42");
    expect(cert.subjectAltName).toBe(`URI:${spiffeId}`);
    expect(cert.keyUsage).toEqual([CLIENT_AUTH]);
    expect(issued.serialNumber).toBe(cert.serialNumber.toUpperCase());
    expect(issued.notBefore.toISOString()).toBe("2029-12-31T23:55:00.000Z");
    expect(issued.notAfter.toISOString()).toBe("2030-01-02T00:00:00.000Z");
    const bc = new x509.X509Certificate(issued.certPem).getExtension(x509.BasicConstraintsExtension)!;
    expect(bc.ca).toBe(false);
  });

  it("issues for a CSR that requests no SAN at all, adding the SPIFFE id itself", async () => {
    const spiffeId = "spiffe://lcp.local/appliance/dep-7";
    const { csrPem } = await generateKeyAndCsr({ commonName: "dep-7" });
    const issued = await issueCertificateFromCsr(ca, { csrPem, spiffeId, validityMs: 60_000 });
    expect(issued.ok).toBe(true);
    if (issued.ok) expect(new X509Certificate(issued.certPem).subjectAltName).toBe(`URI:${spiffeId}`);
  });

  it("throws for an invalid SPIFFE id (a caller bug, not a CSR problem)", async () => {
    const { csrPem } = await generateKeyAndCsr({ commonName: "x" });
    await expect(issueCertificateFromCsr(ca, { csrPem, spiffeId: "dep-7", validityMs: 60_000 })).rejects.toThrow(TypeError);
  });
});
