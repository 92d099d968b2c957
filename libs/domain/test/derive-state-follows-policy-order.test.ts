import { describe, expect, it } from "vitest";
import { deriveState, type DeploymentFacts } from "../src/index.js";
import {
  S,
  T0,
  activeDeployment,
  airGappedDeployment,
  expiredLicense,
  fastSettings,
  issuedLicense,
  provisionedDeployment,
  revokedLicense,
  suspendedDeployment,
} from "./fixtures.js";

const at = (facts: DeploymentFacts, now: number) => deriveState(facts, now, fastSettings);

describe("deriveState", () => {
  it("a deployment with no licence is PENDING", () => {
    expect(at(provisionedDeployment, T0)).toEqual({ state: "PENDING", lockReason: null });
  });

  it("an issued, never-activated licence is PENDING", () => {
    expect(at(issuedLicense, T0 + 100 * S)).toEqual({ state: "PENDING", lockReason: null });
  });

  it("an unbound licence (after a rebind) is PENDING", () => {
    expect(at({ ...activeDeployment, boundFingerprintHash: null, activatedAt: null }, T0)).toEqual({
      state: "PENDING",
      lockReason: null,
    });
  });

  it("a fresh heartbeat is ACTIVE, up to and including exactly heartbeat_timeout", () => {
    expect(at(activeDeployment, T0)).toEqual({ state: "ACTIVE", lockReason: null });
    expect(at(activeDeployment, T0 + 3 * S)).toEqual({ state: "ACTIVE", lockReason: null });
  });

  it("just past heartbeat_timeout is GRACE, up to and including exactly grace_window", () => {
    expect(at(activeDeployment, T0 + 3 * S + 1)).toEqual({ state: "GRACE", lockReason: null });
    expect(at(activeDeployment, T0 + 10 * S)).toEqual({ state: "GRACE", lockReason: null });
  });

  it("just past grace_window is LOCKED(OFFLINE)", () => {
    expect(at(activeDeployment, T0 + 10 * S + 1)).toEqual({ state: "LOCKED", lockReason: "OFFLINE" });
  });

  it("falls back to activatedAt when lastSeenAt is missing", () => {
    expect(at({ ...activeDeployment, lastSeenAt: null }, T0 + 4 * S).state).toBe("GRACE");
  });

  it("an invalid subscription is SUSPENDED, and outranks GRACE", () => {
    expect(at(suspendedDeployment, T0)).toEqual({ state: "SUSPENDED", lockReason: null });
    expect(at(suspendedDeployment, T0 + 5 * S).state).toBe("SUSPENDED");
  });

  it("offline past grace outranks a suspension", () => {
    expect(at(suspendedDeployment, T0 + 11 * S)).toEqual({ state: "LOCKED", lockReason: "OFFLINE" });
  });

  it("is LOCKED(EXPIRED) at exactly the term end and after", () => {
    const facts = { ...activeDeployment, licenseExpiresAt: T0 + 2 * S };
    expect(at(facts, T0 + 2 * S - 1).state).toBe("ACTIVE");
    expect(at(facts, T0 + 2 * S)).toEqual({ state: "LOCKED", lockReason: "EXPIRED" });
    expect(at(expiredLicense, T0 + 100 * S)).toEqual({ state: "LOCKED", lockReason: "EXPIRED" });
  });

  it("expiry outranks never-activated, offline and suspended", () => {
    const facts = { ...issuedLicense, licenseExpiresAt: T0 };
    expect(at(facts, T0)).toEqual({ state: "LOCKED", lockReason: "EXPIRED" });
    expect(at({ ...expiredLicense, subscriptionValid: false }, T0 + 100 * S).lockReason).toBe("EXPIRED");
  });

  it("revocation outranks everything, expiry included", () => {
    expect(at(revokedLicense, T0)).toEqual({ state: "LOCKED", lockReason: "REVOKED" });
    expect(at({ ...expiredLicense, licenseRevoked: true }, T0 + 100 * S).lockReason).toBe("REVOKED");
    expect(at({ ...issuedLicense, licenseRevoked: true }, T0).lockReason).toBe("REVOKED");
    expect(at({ ...suspendedDeployment, licenseRevoked: true }, T0 + 100 * S).lockReason).toBe("REVOKED");
  });

  it("a heartbeat after LOCKED(OFFLINE) returns to ACTIVE", () => {
    const back = { ...activeDeployment, lastSeenAt: T0 + 20 * S };
    expect(at(back, T0 + 20 * S).state).toBe("ACTIVE");
  });
});

describe("deriveState of an air-gapped deployment: its health is its lease", () => {
  const ag = airGappedDeployment;
  it("is never GRACE: ACTIVE however long past heartbeat_timeout and grace_window, up to and including exactly air_gapped_lease", () => {
    expect(at(ag, T0 + 3 * S + 1)).toEqual({ state: "ACTIVE", lockReason: null });
    expect(at(ag, T0 + 10 * S + 1)).toEqual({ state: "ACTIVE", lockReason: null });
    expect(at(ag, T0 + 20 * S)).toEqual({ state: "ACTIVE", lockReason: null });
  });

  it("just past air_gapped_lease is LOCKED(OFFLINE)", () => {
    expect(at(ag, T0 + 20 * S + 1)).toEqual({ state: "LOCKED", lockReason: "OFFLINE" });
  });

  it("falls back to activatedAt when lastSeenAt is missing", () => {
    expect(at({ ...ag, lastSeenAt: null }, T0 + 20 * S)).toEqual({ state: "ACTIVE", lockReason: null });
    expect(at({ ...ag, lastSeenAt: null }, T0 + 20 * S + 1)).toEqual({ state: "LOCKED", lockReason: "OFFLINE" });
  });

  it("keeps the same order of checks: revoked, no licence, expired, unbound, out of lease, suspended", () => {
    expect(at({ ...ag, licenseRevoked: true }, T0 + 100 * S)).toEqual({ state: "LOCKED", lockReason: "REVOKED" });
    expect(at({ ...ag, licenseExpiresAt: null }, T0)).toEqual({ state: "PENDING", lockReason: null });
    expect(at({ ...ag, licenseExpiresAt: T0 + 5 * S }, T0 + 5 * S)).toEqual({ state: "LOCKED", lockReason: "EXPIRED" });
    expect(at({ ...ag, boundFingerprintHash: null, activatedAt: null, lastSeenAt: null }, T0)).toEqual({ state: "PENDING", lockReason: null });
    expect(at({ ...ag, subscriptionValid: false }, T0 + 20 * S + 1)).toEqual({ state: "LOCKED", lockReason: "OFFLINE" });
    expect(at({ ...ag, subscriptionValid: false }, T0 + 15 * S)).toEqual({ state: "SUSPENDED", lockReason: null });
  });

  it("switching connectivity re-derives: silent past the grace window but within the air-gapped lease is LOCKED(OFFLINE) online, ACTIVE air-gapped", () => {
    const silent15 = T0 + 15 * S;
    expect(at({ ...ag, airGapped: false }, silent15)).toEqual({ state: "LOCKED", lockReason: "OFFLINE" });
    expect(at(ag, silent15)).toEqual({ state: "ACTIVE", lockReason: null });
  });

  it("an air-gapped lease longer than the grace window or shorter both hold: the air-gapped lease alone decides", () => {
    const short = { ...fastSettings, airGappedLeaseMs: 2 * S, airGappedRenewAfterMs: 1 * S };
    expect(deriveState(ag, T0 + 2 * S, short).state).toBe("ACTIVE");
    expect(deriveState(ag, T0 + 2 * S + 1, short)).toEqual({ state: "LOCKED", lockReason: "OFFLINE" });
  });
});
