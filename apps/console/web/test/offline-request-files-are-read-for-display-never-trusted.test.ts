import { generateKeyAndCsr } from "@lcp/pki";
import { createTestPki, type TestPki } from "@lcp/testing/pki";
import { MAX_OFFLINE_FILE_BYTES, newOfflineNonce, signActivationRequest, signRenewalRequest } from "@lcp/tokens";
import { beforeAll, describe, expect, it } from "vitest";
import { MAX_REQUEST_FILE_BYTES, plainText, readRequestFile, responseFileName, type RequestFileReading } from "../src/lib/offline-request.js";

const FPH = "ab".repeat(32);
const NOW = new Date(Math.floor(Date.now() / 1000) * 1000);

const b64 = (value: unknown) => Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");
/** A JWS-shaped text with any header and payload, as a hostile box (or a typo) could write it. */
const forge = (header: unknown, payload: unknown) => `${b64(header)}.${b64(payload)}.${b64("not a signature")}`;
const renewalHeader = { alg: "ES256", typ: "renewal-request+jwt" };

function ok(reading: RequestFileReading) {
  if (!reading.ok) throw new Error(`refused: ${reading.message}`);
  return reading;
}

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki();
});

describe("request files, read for display", () => {
  it("shows what a box's activation request says: kind, licence, box time, fingerprint hash", async () => {
    const box = await generateKeyAndCsr({ spiffeId: pki.applianceId("dep-1"), commonName: "dep-1" });
    const file = await signActivationRequest({ privateKeyPem: box.keyPem, lic: "lic-1", tok: "aaa.bbb.ccc", fph: FPH, csr: box.csrPem, nce: newOfflineNonce(), boxTime: NOW, agv: "sdk/1" });
    const view = ok(readRequestFile(`\n${file}\n`));
    expect(view).toMatchObject({ kind: "activation", licenseId: "lic-1", deploymentId: null, leaseSeq: null, usage: [], fingerprintHash: FPH, agentVersion: "sdk/1" });
    expect(view.boxTime?.getTime()).toBe(NOW.getTime());
  });

  it("shows what a renewal request says: deployment, lease seq held and usage counters", async () => {
    const cert = await pki.appliance("dep-1");
    const file = await signRenewalRequest({
      privateKeyPem: cert.keyPem,
      lic: "lic-1",
      dep: "dep-1",
      fph: FPH,
      seq: 7,
      crt: cert.certPem,
      nce: newOfflineNonce(),
      boxTime: NOW,
      use: { "studies.read": 120, users: 4 },
    });
    const view = ok(readRequestFile(file));
    expect(view).toMatchObject({ kind: "renewal", licenseId: "lic-1", deploymentId: "dep-1", leaseSeq: "7", usageTruncated: false });
    expect(view.usage).toEqual([
      { name: "studies.read", value: "120" },
      { name: "users", value: "4" },
    ]);
  });

  it("does not verify: a file with a forged signature reads the same (licensing verifies when it answers)", () => {
    const view = ok(readRequestFile(forge(renewalHeader, { lic: "lic-9", dep: "dep-9", seq: 1, iat: 1_700_000_000, use: {} })));
    expect(view).toMatchObject({ kind: "renewal", licenseId: "lic-9", deploymentId: "dep-9" });
  });

  it("refuses a file over 16 KiB before reading it, counting bytes not characters", () => {
    expect(MAX_REQUEST_FILE_BYTES).toBe(MAX_OFFLINE_FILE_BYTES);
    const big = forge(renewalHeader, { lic: "x".repeat(MAX_REQUEST_FILE_BYTES) });
    expect(readRequestFile(big)).toMatchObject({ ok: false, code: "TOO_LARGE", message: expect.stringMatching(/larger than 16 KiB/) });
    // 6,000 characters, 18,000 bytes of UTF-8.
    expect(readRequestFile("€".repeat(6_000))).toMatchObject({ ok: false, code: "TOO_LARGE" });
    expect(readRequestFile("a".repeat(10_000_000))).toMatchObject({ ok: false, code: "TOO_LARGE" });
  });

  it("says 'not a request file' for junk, and names the kind when it is a response or a token", () => {
    expect(readRequestFile("   ")).toMatchObject({ ok: false, code: "EMPTY" });
    for (const junk of [
      "hello",
      "a.b",
      "a.b.c.d",
      "!!.??.x",
      "\u0000\u0001\u0002PK\u0003\u0004",
      forge("[1]", {}),
      `${b64({ typ: "renewal-request+jwt" })}.${b64("[1,2]")}.s`,
      `${b64({ typ: "renewal-request+jwt" })}.${b64("{")}.s`,
      forge({ alg: "ES256", typ: "something-else+jwt" }, {}),
      forge({ alg: "ES256", typ: 7 }, {}),
      forge({ alg: "ES256" }, { lic: "lic-1" }),
    ]) {
      expect(readRequestFile(junk), JSON.stringify(junk.slice(0, 40))).toMatchObject({ ok: false, code: "NOT_A_REQUEST", message: expect.stringMatching(/^This is not a request file/) });
    }
    expect(readRequestFile(forge({ alg: "ES256", typ: "activation-response+jwt" }, {}))).toMatchObject({ ok: false, code: "WRONG_KIND", message: expect.stringMatching(/activation response, not a request/) });
    expect(readRequestFile(forge({ alg: "EdDSA", typ: "license+jwt" }, {}))).toMatchObject({ ok: false, code: "WRONG_KIND", message: expect.stringMatching(/licence token/) });
  });

  it("bounds and cleans every value a hostile file carries", () => {
    // Within 16 KiB, yet every value out of bounds or of the wrong shape.
    const view = ok(
      readRequestFile(
        forge(renewalHeader, {
          lic: "L".repeat(3_000),
          dep: "dep-\u202Eevil\u0000\u001b[31m",
          fph: { nested: true },
          seq: -1,
          iat: 1e300,
          agv: 42,
          use: Object.fromEntries([["__proto__", 1], ...Array.from({ length: 60 }, (_, i) => [`c${i}${"n".repeat(70)}`, i % 2 ? "many" : 1.5])]),
        }),
      ),
    );
    expect(view.licenseId).toHaveLength(129);
    expect(view.licenseId!.endsWith("…")).toBe(true);
    expect(view.deploymentId).toBe("dep-\uFFFDevil\uFFFD\uFFFD[31m");
    expect(view.fingerprintHash).toBeNull();
    expect(view.leaseSeq).toBeNull();
    expect(view.boxTime).toBeNull();
    expect(view.agentVersion).toBeNull();
    expect(view.usage).toHaveLength(32);
    expect(view.usageTruncated).toBe(true);
    expect(view.usage[0]).toEqual({ name: "__proto__", value: "1" });
    for (const u of view.usage.slice(1)) {
      expect(u.name).toHaveLength(65);
      expect(u.value).toBe("not a count");
    }
    // Wrong shapes where objects and numbers belong read as nothing, not as a crash.
    for (const payload of [{ use: [1, 2] }, { use: "x" }, { use: null }, { seq: "7", iat: "yesterday" }, { seq: 2 ** 60, iat: -5 }]) {
      const v = ok(readRequestFile(forge(renewalHeader, payload)));
      expect(v.usage).toEqual([]);
      expect(v.leaseSeq).toBeNull();
      expect(v.boxTime).toBeNull();
      expect(v.licenseId).toBeNull();
    }
  });

  it("keeps plain text plain: no control or direction characters, no lone surrogates, bounded", () => {
    expect(plainText("ok")).toBe("ok");
    expect(plainText("  ")).toBeNull();
    expect(plainText(12)).toBeNull();
    expect(plainText("a\u200Fb\uD800c\u2028d", 10)).toBe("a\uFFFDb\uFFFDc\uFFFDd");
    expect(plainText("abcdef", 3)).toBe("abc…");
  });
});

describe("response file names", () => {
  it("are <licence id>-<kind>-response.jwt, with anything a file system could trip on replaced", () => {
    expect(responseFileName("0190a5d0-0000-7000-8000-000000000001", "activation")).toBe("0190a5d0-0000-7000-8000-000000000001-activation-response.jwt");
    expect(responseFileName("../../etc/passwd", "renewal")).toBe("_.._etc_passwd-renewal-response.jwt");
    expect(responseFileName("", "renewal")).toBe("license-renewal-response.jwt");
    expect(responseFileName("x".repeat(500), "activation")).toHaveLength(64 + "-activation-response.jwt".length);
  });
});
