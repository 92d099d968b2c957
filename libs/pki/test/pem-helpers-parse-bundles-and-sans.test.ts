import { X509Certificate } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  certificateFingerprint,
  certificateSerialNumber,
  createCertificateAuthority,
  normalizeSerialNumber,
  sanEntries,
  splitPemCertificates,
} from "../src/index.js";

describe("PEM helpers", () => {
  it("splits a CA bundle into its certificates, in order", async () => {
    const a = await createCertificateAuthority({ commonName: "a", validityDays: 1 });
    const b = await createCertificateAuthority({ commonName: "b", validityDays: 1 });
    const parts = splitPemCertificates(`${a.certPem}\n\n${b.certPem.replace(/\n/g, "\r\n")}${a.keyPem}`);
    expect(parts.map((p) => new X509Certificate(p).subject)).toEqual(["CN=a", "CN=b"]);
    expect(splitPemCertificates("nothing here")).toEqual([]);
  });

  it("reports serials and fingerprints in one documented form", async () => {
    const { certPem } = await createCertificateAuthority({ commonName: "a", validityDays: 1 });
    const node = new X509Certificate(certPem);
    expect(certificateSerialNumber(certPem)).toBe(node.serialNumber.toUpperCase());
    expect(certificateFingerprint(certPem)).toBe(node.fingerprint256.replace(/:/g, "").toLowerCase());
    expect(normalizeSerialNumber("00:4a:bc:01")).toBe("4ABC01");
    expect(normalizeSerialNumber("4ABC01")).toBe("4ABC01");
  });

  it("parses node's subjectAltName without letting a quoted value forge an entry", () => {
    expect(sanEntries("DNS:localhost, IP Address:127.0.0.1, URI:spiffe://lcp.local/service/audit")).toEqual([
      { type: "DNS", value: "localhost" },
      { type: "IP Address", value: "127.0.0.1" },
      { type: "URI", value: "spiffe://lcp.local/service/audit" },
    ]);
    // Exactly what node prints for a URI SAN containing ", URI:" (it JSON-quotes and escapes the comma).
    expect(sanEntries('URI:"spiffe://evil\\u002c URI:spiffe://lcp.local/service/audit", DNS:x')).toEqual([
      { type: "URI", value: "spiffe://evil, URI:spiffe://lcp.local/service/audit" },
      { type: "DNS", value: "x" },
    ]);
    expect(sanEntries(undefined)).toEqual([]);
  });
});
