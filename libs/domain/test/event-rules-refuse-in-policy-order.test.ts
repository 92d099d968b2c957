import { describe, expect, it } from "vitest";
import {
  DOMAIN_CODES,
  activate,
  heartbeat,
  heartbeatRefusalLocksBox,
  isDomainCode,
  issueLicense,
  rebind,
  revoke,
  setSubscription,
  utf8ByteLength,
  validateFingerprint,
  validateReason,
  type Verdict,
} from "../src/index.js";
import {
  S,
  T0,
  activeDeployment,
  expiredLicense,
  issuedLicense,
  provisionedDeployment,
  revokedLicense,
} from "./fixtures.js";

function codeOf(v: Verdict): string | null {
  return v.ok ? null : v.code;
}

describe("activate", () => {
  it("binds an unbound licence, sets activatedAt and lastSeenAt to now", () => {
    const v = activate(issuedLicense, "fp-a", T0 + 5 * S);
    expect(v).toEqual({
      ok: true,
      reinstall: false,
      facts: { ...issuedLicense, boundFingerprintHash: "fp-a", activatedAt: T0 + 5 * S, lastSeenAt: T0 + 5 * S },
    });
  });

  it("lets the same box activate again (reinstall), keeping the first activatedAt", () => {
    const v = activate(activeDeployment, "fp-a", T0 + 7 * S);
    expect(v).toMatchObject({ ok: true, reinstall: true });
    if (!v.ok) return;
    expect(v.facts.activatedAt).toBe(T0);
    expect(v.facts.lastSeenAt).toBe(T0 + 7 * S);
  });

  it("refuses another box with FINGERPRINT_MISMATCH", () => {
    expect(codeOf(activate(activeDeployment, "fp-b", T0))).toBe("FINGERPRINT_MISMATCH");
  });

  it("while unbound, refuses a box a rebind moved the licence off; a rebind naming it lets it back", () => {
    const unbound = rebind(activeDeployment, null, "box stolen");
    if (!unbound.ok) throw new Error(unbound.message);
    expect(codeOf(activate(unbound.facts, "fp-a", T0, { movedOffByRebind: true }))).toBe("FINGERPRINT_MISMATCH");
    expect(codeOf(activate(unbound.facts, "fp-new", T0, { movedOffByRebind: false }))).toBeNull();
    const named = rebind(unbound.facts, "fp-a", "box repaired");
    if (!named.ok) throw new Error(named.message);
    expect(codeOf(activate(named.facts, "fp-a", T0, { movedOffByRebind: true }))).toBeNull();
  });

  it("refuses a revoked licence for ever, even for the bound box and after expiry", () => {
    expect(codeOf(activate(revokedLicense, "fp-a", T0))).toBe("LICENSE_REVOKED");
    expect(codeOf(activate(revokedLicense, "fp-z", T0 + 10_000 * S))).toBe("LICENSE_REVOKED");
  });

  it("refuses an expired licence at exactly its term end", () => {
    const facts = { ...issuedLicense, licenseExpiresAt: T0 };
    expect(codeOf(activate(facts, "fp-a", T0 - 1))).toBeNull();
    expect(codeOf(activate(facts, "fp-a", T0))).toBe("LICENSE_EXPIRED");
  });

  it("ranks expiry above a fingerprint mismatch", () => {
    expect(codeOf(activate(expiredLicense, "fp-b", T0 + S))).toBe("LICENSE_EXPIRED");
  });

  it("refuses a deployment with no licence with NOT_FOUND", () => {
    expect(codeOf(activate(provisionedDeployment, "fp-a", T0))).toBe("NOT_FOUND");
  });

  it("a box pre-bound by a rebind activates as a first activation", () => {
    const r = rebind(activeDeployment, "fp-b", "mainboard replaced");
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const v = activate(r.facts, "fp-b", T0 + 3 * S);
    expect(v).toMatchObject({ ok: true, reinstall: false, facts: { activatedAt: T0 + 3 * S, boundFingerprintHash: "fp-b" } });
    expect(codeOf(activate(r.facts, "fp-a", T0 + 3 * S))).toBe("FINGERPRINT_MISMATCH");
  });
});

describe("heartbeat", () => {
  it("refreshes lastSeenAt to server time", () => {
    expect(heartbeat(activeDeployment, "fp-a", T0 + 9 * S)).toEqual({
      ok: true,
      facts: { ...activeDeployment, lastSeenAt: T0 + 9 * S },
    });
  });

  it("refuses in policy order: revoked, expired, mismatch, not activated", () => {
    expect(codeOf(heartbeat({ ...expiredLicense, licenseRevoked: true }, "fp-b", T0 + S))).toBe("LICENSE_REVOKED");
    expect(codeOf(heartbeat(expiredLicense, "fp-b", T0 + S))).toBe("LICENSE_EXPIRED");
    expect(codeOf(heartbeat(activeDeployment, "fp-b", T0))).toBe("FINGERPRINT_MISMATCH");
    expect(codeOf(heartbeat(issuedLicense, "fp-a", T0))).toBe("NOT_ACTIVATED");
  });

  it("after a rebind the old box's next beat is refused and it is told to lock", () => {
    for (const next of ["fp-b", null]) {
      const r = rebind(activeDeployment, next, "stolen box replaced");
      if (!r.ok) throw new Error(r.message);
      const v = heartbeat(r.facts, "fp-a", T0 + S);
      expect(v.ok).toBe(false);
      if (v.ok) return;
      expect(heartbeatRefusalLocksBox(v.code)).toBe(true);
    }
  });

  it("accepts a beat on a suspended deployment (it stays SUSPENDED by derivation)", () => {
    expect(heartbeat({ ...activeDeployment, subscriptionValid: false }, "fp-a", T0).ok).toBe(true);
  });

  it("only state refusals lock the box", () => {
    expect(heartbeatRefusalLocksBox("FINGERPRINT_INVALID")).toBe(false);
    expect(heartbeatRefusalLocksBox("LICENSE_REVOKED")).toBe(true);
  });
});

describe("setSubscription", () => {
  it("marks the subscription invalid and restored, saying whether it changed", () => {
    const off = setSubscription(activeDeployment, false);
    expect(off).toMatchObject({ ok: true, changed: true, facts: { subscriptionValid: false } });
    expect(setSubscription(activeDeployment, true)).toMatchObject({ ok: true, changed: false });
  });
});

describe("revoke", () => {
  it("revokes with a reason, keeping the binding", () => {
    const v = revoke(activeDeployment, T0 + S, "  reported stolen ");
    expect(v).toEqual({
      ok: true,
      revokedAt: T0 + S,
      reason: "reported stolen",
      facts: { ...activeDeployment, licenseRevoked: true },
    });
  });

  it("requires a reason", () => {
    expect(codeOf(revoke(activeDeployment, T0, "  "))).toBe("REASON_REQUIRED");
    expect(codeOf(revoke(activeDeployment, T0, "x".repeat(1025)))).toBe("INVALID_ARGUMENT");
  });

  it("refuses a second revocation with ALREADY_REVOKED", () => {
    expect(codeOf(revoke(revokedLicense, T0, "again"))).toBe("ALREADY_REVOKED");
  });

  it("refuses a deployment without a licence with NOT_FOUND", () => {
    expect(codeOf(revoke(provisionedDeployment, T0, "why"))).toBe("NOT_FOUND");
  });

  it("an expired licence may still be revoked (decommission)", () => {
    expect(revoke(expiredLicense, T0 + S, "decommissioned").ok).toBe(true);
  });
});

describe("rebind", () => {
  it("binds a new fingerprint directly and returns the old one; the licence awaits activation", () => {
    expect(rebind(activeDeployment, "fp-b", "mainboard replaced")).toEqual({
      ok: true,
      reason: "mainboard replaced",
      previousFingerprintHash: "fp-a",
      facts: { ...activeDeployment, boundFingerprintHash: "fp-b", activatedAt: null, lastSeenAt: null },
    });
  });

  it("null unbinds so the next box to activate binds", () => {
    const r = rebind(activeDeployment, null, "new hardware, fingerprint unknown");
    if (!r.ok) throw new Error(r.message);
    expect(r.facts.boundFingerprintHash).toBeNull();
    expect(activate(r.facts, "fp-c", T0 + S)).toMatchObject({ ok: true, facts: { boundFingerprintHash: "fp-c" } });
  });

  it("refuses in order: reason, revoked, same fingerprint", () => {
    expect(codeOf(rebind(revokedLicense, "fp-b", ""))).toBe("REASON_REQUIRED");
    expect(codeOf(rebind(revokedLicense, "fp-b", "why"))).toBe("LICENSE_REVOKED");
    expect(codeOf(rebind(activeDeployment, "fp-a", "why"))).toBe("SAME_FINGERPRINT");
    expect(codeOf(rebind(issuedLicense, null, "why"))).toBe("SAME_FINGERPRINT");
    expect(codeOf(rebind(activeDeployment, "", "why"))).toBe("FINGERPRINT_INVALID");
    expect(codeOf(rebind(provisionedDeployment, "fp-a", "why"))).toBe("NOT_FOUND");
  });
});

describe("issueLicense", () => {
  it("sets a new term, keeping the binding", () => {
    expect(issueLicense(expiredLicense, T0 + 50 * S, T0 + S)).toEqual({
      ok: true,
      facts: { ...expiredLicense, licenseExpiresAt: T0 + 50 * S },
    });
  });

  it("refuses a term in the past and a revoked licence", () => {
    expect(codeOf(issueLicense(issuedLicense, T0, T0))).toBe("INVALID_ARGUMENT");
    expect(codeOf(issueLicense(revokedLicense, T0 + 50 * S, T0))).toBe("LICENSE_REVOKED");
  });
});

describe("validateFingerprint", () => {
  it("accepts 1 to 512 bytes of UTF-8", () => {
    expect(validateFingerprint("a")).toEqual({ ok: true, fingerprint: "a" });
    expect(validateFingerprint("a".repeat(512)).ok).toBe(true);
    expect(validateFingerprint("é".repeat(256)).ok).toBe(true);
  });

  it("refuses empty, whitespace-only and over 512 bytes with FINGERPRINT_INVALID", () => {
    for (const raw of ["", "   ", "\n\t", "a".repeat(513), "é".repeat(257), "😀".repeat(129)]) {
      expect(codeOf(validateFingerprint(raw))).toBe("FINGERPRINT_INVALID");
    }
  });

  it("counts UTF-8 bytes like an encoder", () => {
    for (const s of ["", "abc", "é", "€", "😀", "a😀é", "\ud800", "\udc00x"]) {
      expect(utf8ByteLength(s)).toBe(new TextEncoder().encode(s).length);
    }
  });
});

describe("codes", () => {
  it("every code is known and listed once", () => {
    expect(new Set(DOMAIN_CODES).size).toBe(DOMAIN_CODES.length);
    expect(isDomainCode("LICENSE_REVOKED")).toBe(true);
    expect(isDomainCode("NOPE")).toBe(false);
    expect(validateReason(" ok ")).toEqual({ ok: true, reason: "ok" });
  });
});
