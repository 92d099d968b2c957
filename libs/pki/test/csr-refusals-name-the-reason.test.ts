import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { webcrypto } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import {
  createCertificateAuthority,
  generateKeyAndCsr,
  issueCertificateFromCsr,
  issueServerAndServiceCertificate,
  loadCertificateAuthority,
  MAX_CERTIFICATE_VALIDITY_MS,
  type CertificateAuthority,
  type CsrRefusalCode,
  type IssueFromCsrOptions,
} from "../src/index.js";

const spiffeId = "spiffe://lcp.local/appliance/dep-1";
const subtle = webcrypto.subtle;
let ca: CertificateAuthority;

beforeAll(async () => {
  ca = await loadCertificateAuthority(await createCertificateAuthority({ commonName: "appliance CA", validityDays: 30 }));
});

type Keys = Parameters<typeof x509.Pkcs10CertificateRequestGenerator.create>[0]["keys"];

async function csrWith(options: {
  keys?: Keys;
  algorithm?: object;
  signingAlgorithm?: object;
  names?: x509.JsonGeneralName[];
}): Promise<string> {
  const algorithm = options.algorithm ?? { name: "ECDSA", namedCurve: "P-256" };
  const keys = options.keys ?? ((await subtle.generateKey(algorithm as never, true, ["sign", "verify"])) as unknown as Keys);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: "CN=dep-1",
    keys,
    signingAlgorithm: (options.signingAlgorithm ?? { name: "ECDSA", hash: "SHA-256" }) as never,
    extensions: options.names ? [new x509.SubjectAlternativeNameExtension(options.names)] : [],
  });
  return csr.toString("pem");
}

async function expectRefused(options: Partial<IssueFromCsrOptions>, code: CsrRefusalCode): Promise<void> {
  const result = await issueCertificateFromCsr(ca, { spiffeId, validityMs: 86_400_000, csrPem: "", ...options });
  expect(result.ok ? "issued" : result.code).toBe(code);
  if (!result.ok) expect(result.message.length).toBeGreaterThan(0);
}

describe("CSR_MALFORMED", () => {
  it.each([
    ["empty", ""],
    ["garbage text", "hello, I am a certificate"],
    ["PEM armour around garbage", "-----BEGIN CERTIFICATE REQUEST-----\nAAAAAAAA\n-----END CERTIFICATE REQUEST-----\n"],
    ["PEM with invalid base64", "-----BEGIN CERTIFICATE REQUEST-----\n!!!!\n-----END CERTIFICATE REQUEST-----\n"],
    ["mismatched armour", "-----BEGIN NEW CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"],
  ])("refuses %s", async (_label, csrPem) => {
    await expectRefused({ csrPem }, "CSR_MALFORMED");
  });

  it("refuses a certificate presented as a CSR, truncated DER, and oversized input", async () => {
    const cert = await issueServerAndServiceCertificate(ca, { service: "audit", trustDomain: "lcp.local", validityDays: 1 });
    await expectRefused({ csrPem: cert.certPem.replace(/CERTIFICATE/g, "CERTIFICATE REQUEST") }, "CSR_MALFORMED");
    const good = await generateKeyAndCsr({ spiffeId, commonName: "dep-1" });
    const der = Buffer.from(good.csrPem.replace(/-----[^-]+-----|\s/g, ""), "base64");
    await expectRefused({ csrPem: der.subarray(0, der.length - 20) }, "CSR_MALFORMED");
    await expectRefused({ csrPem: "-----BEGIN CERTIFICATE REQUEST-----\n" + "A".repeat(40_000) + "\n-----END CERTIFICATE REQUEST-----" }, "CSR_MALFORMED");
  });

  it("accepts DER bytes and the NEW CERTIFICATE REQUEST armour", async () => {
    const good = await generateKeyAndCsr({ spiffeId, commonName: "dep-1" });
    const der = Buffer.from(good.csrPem.replace(/-----[^-]+-----|\s/g, ""), "base64");
    expect((await issueCertificateFromCsr(ca, { csrPem: der, spiffeId, validityMs: 60_000 })).ok).toBe(true);
    const legacy = good.csrPem.replace(/CERTIFICATE REQUEST/g, "NEW CERTIFICATE REQUEST");
    expect((await issueCertificateFromCsr(ca, { csrPem: legacy, spiffeId, validityMs: 60_000 })).ok).toBe(true);
  });
});

describe("CSR_BAD_SIGNATURE", () => {
  it("refuses a CSR whose public key did not sign it (no proof of possession)", async () => {
    const holder = (await subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"])) as unknown as Keys;
    const thief = (await subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"])) as unknown as Keys;
    const csrPem = await csrWith({ keys: { publicKey: holder.publicKey, privateKey: thief.privateKey }, names: [{ type: "url", value: spiffeId }] });
    await expectRefused({ csrPem }, "CSR_BAD_SIGNATURE");
  });

  it("refuses a CSR whose signature bytes were altered", async () => {
    const good = await generateKeyAndCsr({ spiffeId, commonName: "dep-1", algorithm: "Ed25519" });
    const der = Buffer.from(good.csrPem.replace(/-----[^-]+-----|\s/g, ""), "base64");
    der[der.length - 1]! ^= 0x01;
    await expectRefused({ csrPem: der }, "CSR_BAD_SIGNATURE");
  });
});

describe("CSR_WEAK_KEY", () => {
  it("refuses RSA 1024", async () => {
    const rsa = { name: "RSASSA-PKCS1-v1_5", modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" };
    await expectRefused({ csrPem: await csrWith({ algorithm: rsa, signingAlgorithm: rsa }) }, "CSR_WEAK_KEY");
  });

  it("refuses ECDSA P-521 (outside the allowed curves)", async () => {
    const csrPem = await csrWith({ algorithm: { name: "ECDSA", namedCurve: "P-521" }, signingAlgorithm: { name: "ECDSA", hash: "SHA-512" } });
    await expectRefused({ csrPem }, "CSR_WEAK_KEY");
  });

  it("accepts RSA 2048 and ECDSA P-384", async () => {
    const rsa = { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" };
    for (const csrPem of [
      await csrWith({ algorithm: rsa, signingAlgorithm: rsa }),
      await csrWith({ algorithm: { name: "ECDSA", namedCurve: "P-384" }, signingAlgorithm: { name: "ECDSA", hash: "SHA-384" } }),
    ]) {
      expect((await issueCertificateFromCsr(ca, { csrPem, spiffeId, validityMs: 60_000 })).ok).toBe(true);
    }
  });
});

describe("CSR_NAME_NOT_ALLOWED", () => {
  it.each<[string, x509.JsonGeneralName[]]>([
    ["a DNS name", [{ type: "dns", value: "licensing.lcp.local" }]],
    ["a DNS name besides its own id", [{ type: "url", value: spiffeId }, { type: "dns", value: "localhost" }]],
    ["an IP address", [{ type: "ip", value: "127.0.0.1" }]],
    ["an e-mail address", [{ type: "email", value: "box@example.org" }]],
    ["another deployment's id", [{ type: "url", value: "spiffe://lcp.local/appliance/dep-2" }]],
    ["its own id and another deployment's", [{ type: "url", value: spiffeId }, { type: "url", value: "spiffe://lcp.local/appliance/dep-2" }]],
    ["a service identity", [{ type: "url", value: "spiffe://lcp.local/service/signing-keys" }]],
    ["its id in another trust domain", [{ type: "url", value: "spiffe://evil.example/appliance/dep-1" }]],
    ["an https URI", [{ type: "url", value: "https://lcp.local/appliance/dep-1" }]],
  ])("refuses a CSR asking for %s", async (_label, names) => {
    await expectRefused({ csrPem: await csrWith({ names }) }, "CSR_NAME_NOT_ALLOWED");
  });
});

describe("VALIDITY_OUT_OF_RANGE", () => {
  it.each([0, 59_999, MAX_CERTIFICATE_VALIDITY_MS + 1, Number.NaN, Number.POSITIVE_INFINITY, -1])("refuses %d ms", async (validityMs) => {
    const { csrPem } = await generateKeyAndCsr({ spiffeId, commonName: "dep-1" });
    await expectRefused({ csrPem, validityMs }, "VALIDITY_OUT_OF_RANGE");
  });

  it("accepts the bounds", async () => {
    const { csrPem } = await generateKeyAndCsr({ spiffeId, commonName: "dep-1" });
    for (const validityMs of [60_000, MAX_CERTIFICATE_VALIDITY_MS]) {
      expect((await issueCertificateFromCsr(ca, { csrPem, spiffeId, validityMs })).ok).toBe(true);
    }
  });
});
