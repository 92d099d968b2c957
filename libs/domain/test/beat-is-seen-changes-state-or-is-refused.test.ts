import { describe, expect, it } from "vitest";
import { beatLeaseDue, judgeBeat, type DerivedState } from "../src/index.js";
import { S, T0, activeDeployment, fastSettings, issuedLicense, revokedLicense, suspendedDeployment } from "./fixtures.js";

const ACTIVE: DerivedState = { state: "ACTIVE", lockReason: null };
const GRACE: DerivedState = { state: "GRACE", lockReason: null };

describe("judgeBeat", () => {
  it("a beat of the bound box that keeps the stored state only marks it seen", () => {
    expect(judgeBeat(activeDeployment, ACTIVE, "fp-a", T0 + S, fastSettings)).toEqual({ kind: "seen", derived: ACTIVE });
  });

  it("a beat that brings a box back from GRACE changes the state (the recorded path)", () => {
    expect(judgeBeat(activeDeployment, GRACE, "fp-a", T0 + 5 * S, fastSettings)).toEqual({ kind: "change" });
  });

  it("a beat of a suspended deployment stored ACTIVE changes the state", () => {
    expect(judgeBeat(suspendedDeployment, ACTIVE, "fp-a", T0 + S, fastSettings)).toEqual({ kind: "change" });
  });

  it("a revoked licence is refused and locks the box", () => {
    expect(judgeBeat(revokedLicense, ACTIVE, "fp-a", T0 + S, fastSettings)).toMatchObject({ kind: "refused", code: "LICENSE_REVOKED", locks: true });
  });

  it("another box than the bound one is refused with FINGERPRINT_MISMATCH and locked", () => {
    expect(judgeBeat(activeDeployment, ACTIVE, "fp-b", T0 + S, fastSettings)).toMatchObject({ kind: "refused", code: "FINGERPRINT_MISMATCH", locks: true });
  });

  it("an unactivated licence is refused", () => {
    expect(judgeBeat(issuedLicense, { state: "PENDING", lockReason: null }, "fp-a", T0 + S, fastSettings)).toMatchObject({ kind: "refused" });
  });
});

describe("beatLeaseDue", () => {
  it("a box never given a lease is due one while ACTIVE", () => {
    expect(beatLeaseDue({ stored: ACTIVE, seq: 0, issuedAt: null }, ACTIVE, T0, fastSettings)).toBe(true);
  });
  it("a fresh lease is not re-signed on every beat, and is at lease_renew_after", () => {
    const held = { stored: ACTIVE, seq: 3, issuedAt: T0 };
    expect(beatLeaseDue(held, ACTIVE, T0 + 5 * S - 1, fastSettings)).toBe(false);
    expect(beatLeaseDue(held, ACTIVE, T0 + 5 * S, fastSettings)).toBe(true);
  });
  it("a state whose lease differs is due a new one at once", () => {
    expect(beatLeaseDue({ stored: ACTIVE, seq: 3, issuedAt: T0 }, { state: "SUSPENDED", lockReason: null }, T0 + 1, fastSettings)).toBe(true);
  });
  it("a LOCKED box is never due a lease", () => {
    expect(beatLeaseDue({ stored: ACTIVE, seq: 3, issuedAt: T0 }, { state: "LOCKED", lockReason: "REVOKED" }, T0 + 9 * S, fastSettings)).toBe(false);
  });
});
