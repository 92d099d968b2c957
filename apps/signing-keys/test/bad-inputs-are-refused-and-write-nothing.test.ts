/**
 * Bad inputs: unknown key ids → NotFound; unknown typ, oversized claims, `iss`/`iat` in claims →
 * InvalidArgument; malformed CSR, a CSR naming another deployment, a weak key → InvalidArgument
 * with the CSR code as ErrorInfo reason. After each refusal every table's row count is unchanged.
 */
import { webcrypto } from "node:crypto";
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { create } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { generateKeyAndCsr } from "@lcp/pki";
import { testDatabases } from "@lcp/testing/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectRefusal, rowCounts, startHarness, type SigningKeysHarness } from "./support.js";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

async function weakRsaCsr(spiffeId: string): Promise<string> {
  const rsa = { name: "RSASSA-PKCS1-v1_5", modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" };
  const keys = (await webcrypto.subtle.generateKey(rsa, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: "CN=dep-1",
    keys: keys as unknown as Parameters<typeof x509.Pkcs10CertificateRequestGenerator.create>[0]["keys"],
    signingAlgorithm: rsa,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: "url", value: spiffeId }])],
  });
  return csr.toString("pem");
}

describe.each(testDatabases())("bad inputs ($name)", (tdb) => {
  let h: SigningKeysHarness;
  let counts: Record<string, number>;
  beforeAll(async () => {
    h = await startHarness(tdb);
    counts = await rowCounts(h);
  });
  afterAll(async () => {
    // Nothing any refusal below did left a row behind (checked after each one as well).
    expect(await rowCounts(h)).toEqual(counts);
    await h?.close();
  });

  async function refused(call: Promise<unknown>, code: Code, reason: string): Promise<void> {
    const error = await expectRefusal(call, code, reason);
    expect(error.rawMessage.length).toBeGreaterThan(5);
    expect(error.rawMessage).not.toMatch(/at .*\.ts:\d+|select |insert /i);
    expect(await rowCounts(h)).toEqual(counts);
  }

  it("answers NotFound for an unknown key id, InvalidArgument for none", async () => {
    await refused(h.admin.retireKey({ kid: "no-such-kid" }), Code.NotFound, "NOT_FOUND");
    await refused(h.admin.revokeKey({ kid: "no-such-kid", reason: "?" }), Code.NotFound, "NOT_FOUND");
    await refused(h.admin.revokeKey({ kid: "" }), Code.InvalidArgument, "INVALID_ARGUMENT");
    await refused(h.admin.retireKey({ kid: "k".repeat(200) }), Code.InvalidArgument, "INVALID_ARGUMENT");
  });

  it("refuses Sign for an unknown typ, oversized claims and claims the service sets itself", async () => {
    const claims = { sub: "lic-1" };
    await refused(h.licensing.sign({ typ: "jwt", claims }), Code.InvalidArgument, "INVALID_ARGUMENT");
    await refused(h.licensing.sign({ typ: "", claims }), Code.InvalidArgument, "INVALID_ARGUMENT");
    await refused(h.licensing.sign({ typ: "at+jwt", claims }), Code.InvalidArgument, "INVALID_ARGUMENT");
    await refused(h.licensing.sign({ typ: "license+jwt", claims: { sub: "x".repeat(17 * 1024) } }), Code.InvalidArgument, "INVALID_ARGUMENT");
    await refused(h.licensing.sign({ typ: "license+jwt", claims: { ...claims, iss: "https://evil" } }), Code.InvalidArgument, "INVALID_ARGUMENT");
    await refused(h.licensing.sign({ typ: "lease+jwt", claims: { ...claims, iat: 1 } }), Code.InvalidArgument, "INVALID_ARGUMENT");
    await refused(h.licensing.sign({ typ: "lease+jwt", claims: { ...claims, exp: "tomorrow" } }), Code.InvalidArgument, "INVALID_ARGUMENT");
    await refused(h.licensing.sign({ typ: "lease+jwt" }), Code.InvalidArgument, "INVALID_ARGUMENT");
    // Just under the limit is fine.
    const token = await h.licensing.sign({ typ: "license+jwt", claims: { sub: "x".repeat(16 * 1024 - 20) } });
    expect(token.token.split(".")).toHaveLength(3);
  });

  it("refuses malformed CSRs, CSRs naming another deployment and weak keys with the CSR code", async () => {
    const spiffeId = h.pki.applianceId("dep-1");
    await refused(h.licensing.issueApplianceCertificate({ deploymentId: "dep-1", csrPem: "not a csr" }), Code.InvalidArgument, "CSR_MALFORMED");
    await refused(h.licensing.issueApplianceCertificate({ deploymentId: "dep-1", csrPem: "" }), Code.InvalidArgument, "CSR_MALFORMED");
    await refused(
      h.licensing.issueApplianceCertificate({
        deploymentId: "dep-1",
        csrPem: "-----BEGIN CERTIFICATE REQUEST-----\nAAAAAAAA\n-----END CERTIFICATE REQUEST-----\n",
      }),
      Code.InvalidArgument,
      "CSR_MALFORMED",
    );
    const other = await generateKeyAndCsr({ commonName: "dep-2", spiffeId: h.pki.applianceId("dep-2") });
    await refused(h.licensing.issueApplianceCertificate({ deploymentId: "dep-1", csrPem: other.csrPem }), Code.InvalidArgument, "CSR_NAME_NOT_ALLOWED");
    await refused(
      h.licensing.issueApplianceCertificate({ deploymentId: "dep-1", csrPem: await weakRsaCsr(spiffeId) }),
      Code.InvalidArgument,
      "CSR_WEAK_KEY",
    );
  });

  it("refuses a bad deployment id or validity before looking at the CSR", async () => {
    const { csrPem } = await generateKeyAndCsr({ commonName: "dep-1", spiffeId: h.pki.applianceId("dep-1") });
    await refused(h.licensing.issueApplianceCertificate({ deploymentId: "../dep-1", csrPem }), Code.InvalidArgument, "INVALID_ARGUMENT");
    await refused(h.licensing.issueApplianceCertificate({ deploymentId: "", csrPem }), Code.InvalidArgument, "INVALID_ARGUMENT");
    const tooLong = create(DurationSchema, { seconds: BigInt(398 * 86_400) });
    await refused(h.licensing.issueApplianceCertificate({ deploymentId: "dep-1", csrPem, validity: tooLong }), Code.InvalidArgument, "VALIDITY_OUT_OF_RANGE");
    const tooShort = create(DurationSchema, { seconds: 30n });
    await refused(h.licensing.issueApplianceCertificate({ deploymentId: "dep-1", csrPem, validity: tooShort }), Code.InvalidArgument, "VALIDITY_OUT_OF_RANGE");
  });
});
