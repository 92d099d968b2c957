import { X509Certificate } from "node:crypto";
import { createCertificateAuthority } from "@lcp/pki";
import { KeyState } from "@lcp/proto/signing/v1/signing_key_service_pb";
import { describe, expect, it } from "vitest";
import { prettyJson, retireBlockedReason, revokeBlockedReason, rotatedCaTrustedUntil } from "../src/lib/signing.js";
import { parseCertificatePem, splitPemCertificates } from "../src/lib/x509.js";

const DAY = 86_400_000;

describe("reading the certificates a CA rotation answers with", () => {
  it("reads subject, serial and validity of real CA certificates as node does", async () => {
    const now = new Date("2026-03-05T14:00:00Z");
    for (const algorithm of ["P-256", "Ed25519"] as const) {
      const { certPem } = await createCertificateAuthority({ commonName: "lcp appliance CA 2026-03-05 0123456789ab", validityDays: 3650, now, algorithm });
      const node = new X509Certificate(certPem);
      const summary = parseCertificatePem(certPem);
      expect(summary, algorithm).not.toBeNull();
      expect(summary!.subject).toBe("lcp appliance CA 2026-03-05 0123456789ab");
      expect(summary!.serialHex).toBe(node.serialNumber.toUpperCase().replace(/^(00)+(?=.)/, ""));
      expect(summary!.notBefore.getTime()).toBe(new Date(node.validFrom).getTime());
      expect(summary!.notAfter.getTime()).toBe(new Date(node.validTo).getTime());
      // GeneralizedTime past 2049 as well as UTCTime before it.
      expect(summary!.notAfter.getUTCFullYear()).toBe(2036);
    }
    const far = await createCertificateAuthority({ commonName: "far", validityDays: 30 * 365, now });
    expect(parseCertificatePem(far.certPem)?.notAfter.getUTCFullYear()).toBe(2056);
  });

  it("splits a trust bundle into its certificates, in order", async () => {
    const a = await createCertificateAuthority({ commonName: "current", validityDays: 10 });
    const b = await createCertificateAuthority({ commonName: "previous", validityDays: 10 });
    const bundle = `${a.certPem}\n${b.certPem}`;
    expect(splitPemCertificates(bundle).map((pem) => parseCertificatePem(pem)?.subject)).toEqual(["current", "previous"]);
    // A private key in the text is never taken for a certificate.
    expect(splitPemCertificates(a.keyPem)).toEqual([]);
  });

  it("answers null, never a guess, for what is not a readable certificate", async () => {
    const { certPem } = await createCertificateAuthority({ commonName: "x", validityDays: 1 });
    const body = certPem.replace(/-----(BEGIN|END) CERTIFICATE-----|\s/g, "");
    const wrap = (b64: string) => `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----`;
    const der = Buffer.from(body, "base64");
    const cases = [
      "",
      "not a certificate",
      wrap("!!!!"),
      wrap(body.slice(0, 40)),
      wrap(der.subarray(0, der.length - 10).toString("base64")),
      // A length of 2^32 - 1 bytes in a 4-byte long form.
      wrap(Buffer.from([0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x00]).toString("base64")),
      // An indefinite length (BER, not DER).
      wrap(Buffer.from([0x30, 0x80, 0x00, 0x00]).toString("base64")),
      wrap(Buffer.from([0x02, 0x01, 0x05]).toString("base64")),
      "-----BEGIN CERTIFICATE-----\n" + "A".repeat(2_000_000) + "\n-----END CERTIFICATE-----",
    ];
    for (const pem of cases) expect(parseCertificatePem(pem), pem.slice(0, 40)).toBeNull();
  });

  it("keeps a rotated CA trusted for one certificate validity at most, never past its own expiry", () => {
    const at = Date.UTC(2026, 2, 5);
    expect(rotatedCaTrustedUntil(at, at + 3650 * DAY)).toBe(at + 30 * DAY);
    expect(rotatedCaTrustedUntil(at, at + 10 * DAY)).toBe(at + 10 * DAY);
    expect(rotatedCaTrustedUntil(at, at + 3650 * DAY, 7 * DAY)).toBe(at + 7 * DAY);
  });
});

describe("the signing-key lifecycle as the screen offers it", () => {
  it("retires by hand only a NEXT key, and revokes anything not yet revoked", () => {
    expect(retireBlockedReason(KeyState.NEXT)).toBeNull();
    expect(retireBlockedReason(KeyState.ACTIVE)).toMatch(/Rotate keys/);
    expect(retireBlockedReason(KeyState.RETIRED)).toMatch(/already retired/);
    expect(retireBlockedReason(KeyState.REVOKED)).toMatch(/back in the JWKS/);
    for (const s of [KeyState.NEXT, KeyState.ACTIVE, KeyState.RETIRED]) expect(revokeBlockedReason(s)).toBeNull();
    expect(revokeBlockedReason(KeyState.REVOKED)).toMatch(/already revoked/);
    expect(retireBlockedReason(42 as KeyState)).not.toBeNull();
  });

  it("indents the JWKS for reading and shows what is not JSON as it came", () => {
    expect(prettyJson('{"keys":[{"kid":"a"}]}')).toBe('{\n  "keys": [\n    {\n      "kid": "a"\n    }\n  ]\n}');
    expect(prettyJson("<html>")).toBe("<html>");
  });
});
