import { describe, expect, it } from "vitest";
import { leaseExpiry, leaseLifetimeMs, leaseRenewAfterMsFor, leaseStateFor, needsNewLease, nextLeaseSeq, type IssuedLease } from "../src/index.js";
import { S, T0, fastSettings } from "./fixtures.js";

describe("leaseStateFor", () => {
  it("issues ACTIVE leases for ACTIVE and GRACE, SUSPENDED for SUSPENDED, none for PENDING or LOCKED", () => {
    expect(leaseStateFor({ state: "ACTIVE", lockReason: null })).toBe("ACTIVE");
    expect(leaseStateFor({ state: "GRACE", lockReason: null })).toBe("ACTIVE");
    expect(leaseStateFor({ state: "SUSPENDED", lockReason: null })).toBe("SUSPENDED");
    expect(leaseStateFor({ state: "PENDING", lockReason: null })).toBeNull();
    expect(leaseStateFor({ state: "LOCKED", lockReason: "REVOKED" })).toBeNull();
  });
});

describe("needsNewLease", () => {
  const last: IssuedLease = { issuedAt: T0, seq: 4, state: "ACTIVE" };
  const ask = (lastLease: IssuedLease | null, derivedLeaseState: "ACTIVE" | "SUSPENDED" | null, now: number) =>
    needsNewLease({ lastLease, derivedLeaseState, now, settings: fastSettings });

  it("signs the first lease", () => expect(ask(null, "ACTIVE", T0)).toBe(true));
  it("never signs when no lease may be issued", () => expect(ask(null, null, T0)).toBe(false));
  it("does not re-sign on every heartbeat", () => expect(ask(last, "ACTIVE", T0 + 5 * S - 1)).toBe(false));
  it("re-signs at exactly lease_renew_after", () => expect(ask(last, "ACTIVE", T0 + 5 * S)).toBe(true));
  it("re-signs when the state changes", () => expect(ask(last, "SUSPENDED", T0 + 1)).toBe(true));
  it("re-signs a lease from the future", () => expect(ask(last, "ACTIVE", T0 - 1)).toBe(true));
});

describe("seq and expiry", () => {
  it("seq starts at 1 and strictly increases", () => {
    expect(nextLeaseSeq(null)).toBe(1);
    expect(nextLeaseSeq(1)).toBe(2);
    expect(nextLeaseSeq(41)).toBe(42);
  });

  it("a lease expires one grace window after it was signed", () => {
    expect(leaseExpiry(T0, fastSettings)).toBe(T0 + 10 * S);
    expect(leaseExpiry(T0, fastSettings, { airGapped: false })).toBe(T0 + 10 * S);
  });

  it("an air-gapped box's lease lives air_gapped_lease and is renewed after air_gapped_renew_after", () => {
    expect(leaseLifetimeMs({ airGapped: true }, fastSettings)).toBe(20 * S);
    expect(leaseLifetimeMs({ airGapped: false }, fastSettings)).toBe(10 * S);
    expect(leaseExpiry(T0, fastSettings, { airGapped: true })).toBe(T0 + 20 * S);
    expect(leaseRenewAfterMsFor({ airGapped: true }, fastSettings)).toBe(15 * S);
    expect(leaseRenewAfterMsFor({ airGapped: false }, fastSettings)).toBe(5 * S);
  });
});
