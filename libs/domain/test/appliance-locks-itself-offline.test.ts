import { describe, expect, it } from "vitest";
import { evaluateApplianceState, type ApplianceStateInput } from "../src/index.js";
import { S, T0 } from "./fixtures.js";

const base: ApplianceStateInput = {
  lease: { st: "ACTIVE", iat: T0, exp: T0 + 10 * S, seq: 3 },
  lockedByDirective: false,
  now: T0 + S,
  watermark: T0 + S,
  connected: true,
  maxClockSkewMs: 2 * S,
};
const run = (patch: Partial<ApplianceStateInput>) => evaluateApplianceState({ ...base, ...patch });

describe("evaluateApplianceState", () => {
  it("is ACTIVE when connected on a live ACTIVE lease, and raises the watermark", () => {
    expect(run({ now: T0 + 2 * S })).toEqual({ state: "ACTIVE", watermark: T0 + 2 * S });
  });

  it("is GRACE when offline on a live lease", () => {
    expect(run({ connected: false, now: T0 + 9 * S })).toMatchObject({ state: "GRACE" });
  });

  it("is SUSPENDED on a SUSPENDED lease, connected or not", () => {
    const lease = { ...base.lease!, st: "SUSPENDED" as const };
    expect(run({ lease }).state).toBe("SUSPENDED");
    expect(run({ lease, connected: false }).state).toBe("SUSPENDED");
  });

  it("locks at exactly the lease expiry", () => {
    expect(run({ connected: false, now: T0 + 10 * S - 1 }).state).toBe("GRACE");
    expect(run({ connected: false, now: T0 + 10 * S })).toMatchObject({ state: "LOCKED", reason: "LEASE_EXPIRED" });
  });

  it("locks with no lease", () => {
    expect(run({ lease: null })).toMatchObject({ state: "LOCKED", reason: "NO_LEASE" });
  });

  it("locks on a LOCK directive even with a live lease", () => {
    expect(run({ lockedByDirective: true })).toMatchObject({ state: "LOCKED", reason: "LOCK_DIRECTIVE" });
  });

  it("locks when told the licence is revoked", () => {
    expect(run({ revoked: true, lockedByDirective: true })).toMatchObject({ state: "LOCKED", reason: "REVOKED" });
  });

  it("tolerates the clock falling back by up to max_clock_skew", () => {
    expect(run({ watermark: T0 + 5 * S, now: T0 + 3 * S }).state).toBe("ACTIVE");
  });

  it("locks as CLOCK_TAMPERED when the clock falls back further, without lowering the watermark", () => {
    expect(run({ watermark: T0 + 5 * S, now: T0 + 3 * S - 1 })).toEqual({
      state: "LOCKED",
      reason: "CLOCK_TAMPERED",
      watermark: T0 + 5 * S,
    });
  });

  it("counts the lease's iat as an observed time: winding back before it is tampering", () => {
    expect(run({ watermark: 0, now: T0 - 2 * S - 1, connected: false })).toMatchObject({ reason: "CLOCK_TAMPERED" });
  });

  it("ranks clock tampering above a LOCK directive and an expired lease", () => {
    expect(run({ watermark: T0 + 50 * S, now: T0, lockedByDirective: true }).reason).toBe("CLOCK_TAMPERED");
  });
});
