import { DeploymentState, LicenseStatus, LockReason, SubscriptionStatus } from "@lcp/proto/licensing/v1/types_pb";
import { describe, expect, it } from "vitest";
import { durationValueFromMs, durationValueToMs, formatElapsed } from "../src/lib/duration.js";
import { explainState, type VerdictFacts } from "../src/lib/verdict.js";

describe("durations", () => {
  it("shows a stored duration in the largest unit that holds it exactly", () => {
    expect(durationValueFromMs(60_000)).toEqual({ amount: "1", unit: "min" });
    expect(durationValueFromMs(300_000)).toEqual({ amount: "5", unit: "min" });
    expect(durationValueFromMs(14 * 86_400_000)).toEqual({ amount: "14", unit: "d" });
    expect(durationValueFromMs(90_000)).toEqual({ amount: "90", unit: "s" });
    expect(durationValueFromMs(1500)).toEqual({ amount: "1500", unit: "ms" });
    expect(durationValueFromMs(0)).toEqual({ amount: "0", unit: "s" });
  });

  it("reads what an operator typed, decimals included, and refuses what is not an amount", () => {
    expect(durationValueToMs({ amount: "1.5", unit: "h" })).toBe(5_400_000);
    expect(durationValueToMs({ amount: " 14 ", unit: "d" })).toBe(1_209_600_000);
    for (const amount of ["", "-1", "1e3", "abc", "1.2.3", "9".repeat(20), "0x10"]) {
      expect(durationValueToMs({ amount, unit: "s" }), amount).toBeNull();
    }
  });

  it("writes elapsed times in at most two units", () => {
    expect(formatElapsed(200_000)).toBe("3 min 20 s");
    expect(formatElapsed(2 * 86_400_000 + 4 * 3_600_000 + 5_000)).toBe("2 d 4 h");
    expect(formatElapsed(3_600_000)).toBe("1 h");
    expect(formatElapsed(250)).toBe("250 ms");
  });
});

describe("why a deployment is in its state", () => {
  const base: VerdictFacts = {
    state: DeploymentState.ACTIVE,
    lockReason: LockReason.UNSPECIFIED,
    subscription: SubscriptionStatus.VALID,
    licenseStatus: LicenseStatus.ACTIVATED,
    licenseExpiresAt: null,
    lastSeenAt: 1_000_000,
    graceWindowMs: 14 * 86_400_000,
  };
  const now = 1_000_000 + 600_000;

  it("tells each state and lock reason apart", () => {
    expect(explainState(base, now)).toMatch(/^Active: .*last seen 10 min ago/);
    expect(explainState({ ...base, state: DeploymentState.PENDING, licenseStatus: null }, now)).toMatch(/no licence has been issued/);
    expect(explainState({ ...base, state: DeploymentState.PENDING }, now)).toMatch(/no box has activated/);
    expect(explainState({ ...base, state: DeploymentState.GRACE }, now)).toMatch(/signed lease\. It locks itself in 13 d 23 h/);
    expect(explainState({ ...base, state: DeploymentState.SUSPENDED }, now)).toMatch(/subscription is invalid/);
    expect(explainState({ ...base, state: DeploymentState.LOCKED, lockReason: LockReason.REVOKED }, now)).toMatch(/revoked: no box can ever activate/);
    expect(explainState({ ...base, state: DeploymentState.LOCKED, lockReason: LockReason.EXPIRED }, now)).toMatch(/term has ended/);
    expect(explainState({ ...base, state: DeploymentState.LOCKED, lockReason: LockReason.OFFLINE }, now)).toMatch(/offline longer than the grace window/);
  });

  it("tells an air-gapped box by its lease answered by file, never by heartbeats", () => {
    const air = { ...base, airGapped: true };
    expect(explainState(air, now)).toMatch(/^Active: the air-gapped box .* lease last answered by file \(last answered 10 min ago\)/);
    expect(explainState(air, now)).not.toMatch(/heartbeat/);
    expect(explainState({ ...air, state: DeploymentState.LOCKED, lockReason: LockReason.OFFLINE }, now)).toMatch(/lease has run out .* next renewal request on the Offline page/);
    // Revocation reads the same whichever way the box connects.
    expect(explainState({ ...air, state: DeploymentState.LOCKED, lockReason: LockReason.REVOKED }, now)).toBe(explainState({ ...base, state: DeploymentState.LOCKED, lockReason: LockReason.REVOKED }, now));
  });
});
