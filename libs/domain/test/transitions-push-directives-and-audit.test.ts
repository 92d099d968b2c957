import { describe, expect, it } from "vitest";
import { AUDIT_ACTIONS, auditActionFor, directivesFor, isAuditAction, transitionOf, type DerivedState } from "../src/index.js";

const pending: DerivedState = { state: "PENDING", lockReason: null };
const active: DerivedState = { state: "ACTIVE", lockReason: null };
const grace: DerivedState = { state: "GRACE", lockReason: null };
const suspended: DerivedState = { state: "SUSPENDED", lockReason: null };
const revoked: DerivedState = { state: "LOCKED", lockReason: "REVOKED" };
const expired: DerivedState = { state: "LOCKED", lockReason: "EXPIRED" };
const offline: DerivedState = { state: "LOCKED", lockReason: "OFFLINE" };
const ALL = [pending, active, grace, suspended, revoked, expired, offline];

describe("transitionOf", () => {
  it("is null when state and lock reason are equal", () => {
    for (const s of ALL) expect(transitionOf(s, { ...s })).toBeNull();
  });

  it("a change of lock reason alone is a transition", () => {
    expect(transitionOf(offline, revoked)).toEqual({ from: offline, to: revoked });
  });
});

describe("directivesFor", () => {
  const d = (from: DerivedState, to: DerivedState) => directivesFor({ from, to });

  it("→ LOCKED(REVOKED | EXPIRED) pushes LOCK", () => {
    for (const from of [active, grace, suspended, pending, offline]) expect(d(from, revoked)).toEqual(["LOCK"]);
    expect(d(active, expired)).toEqual(["LOCK"]);
  });

  it("→ LOCKED(OFFLINE) pushes nothing: the box is away and has locked itself on its lease", () => {
    expect(d(grace, offline)).toEqual([]);
    expect(d(suspended, offline)).toEqual([]);
  });

  it("→ SUSPENDED pushes SUSPEND and a new lease", () => {
    expect(d(active, suspended)).toEqual(["SUSPEND", "RENEW_LEASE"]);
    expect(d(offline, suspended)).toEqual(["SUSPEND", "RENEW_LEASE"]);
  });

  it("back to ACTIVE pushes REACTIVATE and a new lease", () => {
    for (const from of [suspended, offline, grace, expired]) expect(d(from, active)).toEqual(["REACTIVATE", "RENEW_LEASE"]);
  });

  it("→ GRACE pushes nothing: the box is offline", () => {
    expect(d(active, grace)).toEqual([]);
    expect(d(suspended, grace)).toEqual([]);
  });

  it("activation pushes nothing (the Activate response carries the lease); a rebind locks the old box", () => {
    expect(d(pending, active)).toEqual([]);
    expect(d(pending, suspended)).toEqual([]);
    expect(d(active, pending)).toEqual(["LOCK"]);
  });
});

describe("auditActionFor", () => {
  const a = (from: DerivedState, to: DerivedState) => auditActionFor({ from, to });

  it("maps each kind of transition to its action", () => {
    expect(a(active, revoked)).toBe("deployment.lock");
    expect(a(active, expired)).toBe("license.expire");
    expect(a(grace, offline)).toBe("deployment.offline");
    expect(a(active, grace)).toBe("deployment.offline");
    expect(a(grace, active)).toBe("deployment.online");
    expect(a(offline, active)).toBe("deployment.online");
    expect(a(suspended, active)).toBe("deployment.reactivate");
    expect(a(expired, active)).toBe("deployment.reactivate");
    expect(a(active, suspended)).toBe("deployment.suspend");
    expect(a(pending, active)).toBe("license.activate");
    expect(a(pending, suspended)).toBe("license.activate");
    expect(a(active, pending)).toBe("license.rebind");
  });

  it("every transition between distinct states maps to a known action", () => {
    for (const from of ALL) {
      for (const to of ALL) {
        const t = transitionOf(from, to);
        if (t) expect(isAuditAction(auditActionFor(t))).toBe(true);
      }
    }
  });

  it("the action list is docs/design.md §7's, without duplicates", () => {
    expect(new Set(AUDIT_ACTIONS).size).toBe(AUDIT_ACTIONS.length);
    expect(AUDIT_ACTIONS).toContain("authz.denied");
    expect(isAuditAction("license.steal")).toBe(false);
  });
});
