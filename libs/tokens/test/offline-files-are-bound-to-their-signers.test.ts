import { generateKeyAndCsr } from "@lcp/pki";
import { createTestPki, type TestPki } from "@lcp/testing/pki";
import { beforeAll, describe, expect, it } from "vitest";
import {
  MAX_OFFLINE_FILE_BYTES,
  newOfflineNonce,
  signActivationRequest,
  signOfflineResponse,
  signRenewalRequest,
  verifyActivationRequest,
  verifyOfflineResponse,
  verifyRenewalRequest,
  type OfflineResponseTrust,
} from "../src/index.js";

const FPH = "a".repeat(64);
// Whole seconds (iat is in seconds); the test PKI issues its certificates as of the real clock.
const NOW = new Date(Math.floor(Date.now() / 1000) * 1000);
const ISSUER = "https://licensing.test";
const JWKS = { keys: [{ kty: "OKP", crv: "Ed25519", x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", kid: "k1", alg: "EdDSA", use: "sig" }] };

let pki: TestPki;
let box: { keyPem: string; csrPem: string };
let trust: OfflineResponseTrust;

/** Swaps one character of a JWS part (0 header, 1 payload, 2 signature), keeping it base64url. */
function tamper(file: string, part: number): string {
  const parts = file.split(".");
  const p = parts[part]!;
  const i = Math.floor(p.length / 2);
  parts[part] = p.slice(0, i) + (p[i] === "A" ? "B" : "A") + p.slice(i + 1);
  return parts.join(".");
}

beforeAll(async () => {
  pki = await createTestPki();
  box = await generateKeyAndCsr({ spiffeId: pki.applianceId("dep-1"), commonName: "dep-1" });
  trust = { caPem: pki.ca.certPem, signerUri: pki.serviceId("licensing"), issuer: ISSUER, now: NOW, clockToleranceMs: 60_000 };
});

async function activationRequest(overrides: { privateKeyPem?: string } = {}) {
  return signActivationRequest({
    privateKeyPem: overrides.privateKeyPem ?? box.keyPem,
    lic: "lic-1",
    tok: "aaa.bbb.ccc",
    fph: FPH,
    csr: box.csrPem,
    nce: newOfflineNonce(),
    boxTime: NOW,
    agv: "sdk/1",
  });
}

async function renewalResponse(signer: { certPem: string; keyPem: string }, at = NOW) {
  return signOfflineResponse(
    "renewalResponse",
    { iss: ISSUER, sub: "lic-1", dep: "dep-1", fph: FPH, nce: newOfflineNonce(), st: "ACTIVE", lse: "aaa.bbb.ccc", jwks: JWKS, ren: 1 },
    { privateKeyPem: signer.keyPem, certificateChainPem: [signer.certPem] },
    at,
  );
}

describe("requests", () => {
  it("an activation request verifies with the key it embeds, and a tampered one does not", async () => {
    const file = await activationRequest();
    const verdict = await verifyActivationRequest(file);
    expect(verdict.ok).toBe(true);
    if (verdict.ok) expect(verdict.claims).toMatchObject({ v: 1, lic: "lic-1", fph: FPH, agv: "sdk/1", iat: NOW.getTime() / 1000 });
    expect(await verifyActivationRequest(tamper(file, 1))).toMatchObject({ ok: false, code: expect.stringMatching(/FILE_BAD_SIGNATURE|FILE_MALFORMED/) });
    expect(await verifyActivationRequest(tamper(file, 2))).toMatchObject({ ok: false, code: "FILE_BAD_SIGNATURE" });
  });

  it("a renewal request verifies with the key of the certificate it carries, and not with another's", async () => {
    const cert = await pki.appliance("dep-1");
    const other = await pki.appliance("dep-1", {});
    const input = { lic: "lic-1", dep: "dep-1", fph: FPH, seq: 3, crt: cert.certPem, nce: newOfflineNonce(), boxTime: NOW, use: { uptime_s: 5 } };
    const good = await signRenewalRequest({ ...input, privateKeyPem: cert.keyPem });
    const verdict = await verifyRenewalRequest(good);
    expect(verdict.ok).toBe(true);
    if (verdict.ok) expect(verdict.certificate.serialNumber).toBe(new (await import("node:crypto")).X509Certificate(cert.certPem).serialNumber);
    // Signed by another box's key while carrying this box's certificate.
    const forged = await signRenewalRequest({ ...input, privateKeyPem: other.keyPem });
    expect(await verifyRenewalRequest(forged)).toMatchObject({ ok: false, code: "FILE_BAD_SIGNATURE" });
  });

  it("refuses the wrong kind, oversized files, junk and out-of-bounds claims before anything is trusted", async () => {
    const activation = await activationRequest();
    expect(await verifyRenewalRequest(activation)).toMatchObject({ ok: false, code: "FILE_WRONG_KIND", message: "this is an activation request, not a renewal request" });
    expect(await verifyActivationRequest("x".repeat(MAX_OFFLINE_FILE_BYTES + 1))).toMatchObject({ ok: false, code: "FILE_MALFORMED" });
    expect(await verifyActivationRequest("not a file")).toMatchObject({ ok: false, code: "FILE_MALFORMED" });
    expect(await verifyActivationRequest(42)).toMatchObject({ ok: false, code: "FILE_MALFORMED" });
    // A licence or lease token is not a request.
    expect(await verifyActivationRequest("eyJhbGciOiJFZERTQSIsInR5cCI6ImxpY2Vuc2Urand0In0.e30.AAAA")).toMatchObject({ ok: false, code: "FILE_WRONG_KIND" });
    // The writer refuses what a reader would: a counter name with markup, a fingerprint that is not a hash.
    const cert = await pki.appliance("dep-1");
    const base = { lic: "lic-1", dep: "dep-1", fph: FPH, seq: 1, crt: cert.certPem, nce: newOfflineNonce(), boxTime: NOW, privateKeyPem: cert.keyPem };
    await expect(signRenewalRequest({ ...base, use: { "<script>": 1 } })).rejects.toThrow(/use has a counter name/);
    await expect(signRenewalRequest({ ...base, use: {}, fph: "raw fingerprint" })).rejects.toThrow(/fph/);
    await expect(signRenewalRequest({ ...base, use: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`c${i}`, i])) })).rejects.toThrow(/at most 32/);
  });
});

describe("responses", () => {
  it("verify on the box when signed by licensing's certificate under the box's CA", async () => {
    const file = await renewalResponse(await pki.service("licensing"));
    const verdict = await verifyOfflineResponse(file, "renewalResponse", trust);
    expect(verdict).toMatchObject({ ok: true, claims: { st: "ACTIVE", sub: "lic-1", iss: ISSUER } });
  });

  it("are refused when signed by another service, under a foreign CA, tampered, past their deadline or from another issuer", async () => {
    const wrongService = await renewalResponse(await pki.service("audit"));
    expect(await verifyOfflineResponse(wrongService, "renewalResponse", trust)).toMatchObject({ ok: false, code: "FILE_UNTRUSTED_SIGNER" });
    const foreign = await renewalResponse(await pki.foreignService("licensing"));
    expect(await verifyOfflineResponse(foreign, "renewalResponse", trust)).toMatchObject({ ok: false, code: "FILE_UNTRUSTED_SIGNER" });
    // A leaf that names licensing but was "issued" by another service's leaf (its key signing).
    const console_ = await pki.service("console");
    const licensing = await pki.service("licensing");
    const viaLeaf = await signOfflineResponse(
      "renewalResponse",
      { iss: ISSUER, sub: "lic-1", dep: "dep-1", fph: FPH, nce: newOfflineNonce(), st: "ACTIVE", lse: "aaa.bbb.ccc", jwks: JWKS },
      { privateKeyPem: licensing.keyPem, certificateChainPem: [licensing.certPem, console_.certPem] },
      NOW,
    );
    expect(await verifyOfflineResponse(viaLeaf, "renewalResponse", { ...trust, caPem: console_.certPem })).toMatchObject({ ok: false, code: "FILE_UNTRUSTED_SIGNER" });
    const good = await renewalResponse(await pki.service("licensing"));
    expect(await verifyOfflineResponse(tamper(good, 1), "renewalResponse", trust)).toMatchObject({ ok: false });
    expect(await verifyOfflineResponse(tamper(good, 2), "renewalResponse", trust)).toMatchObject({ ok: false, code: "FILE_BAD_SIGNATURE" });
    const late = { ...trust, now: new Date(NOW.getTime() + 31 * 86_400_000) };
    expect(await verifyOfflineResponse(good, "renewalResponse", late)).toMatchObject({ ok: false, code: "FILE_EXPIRED" });
    expect(await verifyOfflineResponse(good, "renewalResponse", { ...trust, issuer: "https://elsewhere" })).toMatchObject({ ok: false, code: "FILE_CLAIMS_INVALID" });
    expect(await verifyOfflineResponse(good, "activationResponse", trust)).toMatchObject({ ok: false, code: "FILE_WRONG_KIND" });
  });

  it("a locking answer carries a reason and no lease, and the writer refuses anything else", async () => {
    const signer = await pki.service("licensing");
    const claims = { iss: ISSUER, sub: "lic-1", dep: "dep-1", fph: FPH, nce: newOfflineNonce(), jwks: JWKS };
    const lock = await signOfflineResponse("renewalResponse", { ...claims, st: "LOCKED", rsn: "REVOKED" }, { privateKeyPem: signer.keyPem, certificateChainPem: [signer.certPem] }, NOW);
    expect(await verifyOfflineResponse(lock, "renewalResponse", trust)).toMatchObject({ ok: true, claims: { st: "LOCKED", rsn: "REVOKED" } });
    await expect(
      signOfflineResponse("renewalResponse", { ...claims, st: "LOCKED", rsn: "REVOKED", lse: "a.b.c" }, { privateKeyPem: signer.keyPem, certificateChainPem: [signer.certPem] }, NOW),
    ).rejects.toThrow(/lse must be set exactly when st is not LOCKED/);
  });
});
