/**
 * Transitions: when the derived state differs from the stored one, the caller records a
 * transition, pushes its directives to the box and audits it under one action name.
 */
import type { AuditAction } from "./audit-actions.js";
import { sameDerivedState, type DerivedState } from "./state.js";

/** A change of derived state, from the stored one to the newly derived one. */
export interface Transition {
  readonly from: DerivedState;
  readonly to: DerivedState;
}

/** The state-change directives the control plane pushes to a connected box. */
export const STATE_DIRECTIVES = ["LOCK", "SUSPEND", "REACTIVATE", "RENEW_LEASE"] as const;

/** A state-change directive (`licensing.v1.DirectiveType` LOCK, SUSPEND, REACTIVATE, RENEW_LEASE). */
export type StateDirective = (typeof STATE_DIRECTIVES)[number];

/**
 * The transition from the stored state to the derived one, or null when they are equal
 * (lock reason included, so LOCKED(OFFLINE) → LOCKED(REVOKED) is a transition).
 */
export function transitionOf(stored: DerivedState, derived: DerivedState): Transition | null {
  if (sameDerivedState(stored, derived)) return null;
  return { from: { state: stored.state, lockReason: stored.lockReason }, to: { state: derived.state, lockReason: derived.lockReason } };
}

/**
 * The directives to push to the box (if connected) for a transition, in sending order:
 * - → LOCKED(REVOKED | EXPIRED): LOCK.
 * - → LOCKED(OFFLINE): none. The box has not been heard from for the whole grace window, so its
 *   lease has expired and it has locked itself; a stored LOCK would only reach it when it comes
 *   back, and then wrongly, since its first healthy beat returns it to ACTIVE.
 * - → PENDING (a rebind): LOCK — the only box that can hold a stream then is the old one.
 * - → SUSPENDED: SUSPEND, RENEW_LEASE (a lease with st SUSPENDED).
 * - → ACTIVE from SUSPENDED, GRACE or LOCKED: REACTIVATE, RENEW_LEASE.
 * - PENDING → ACTIVE/SUSPENDED (activation): none; the Activate response carries state and lease.
 * - → GRACE: none; the box is offline, that is what GRACE means.
 */
export function directivesFor(transition: Transition): StateDirective[] {
  const { from, to } = transition;
  switch (to.state) {
    case "LOCKED":
      return to.lockReason === "OFFLINE" ? [] : ["LOCK"];
    case "PENDING":
      return ["LOCK"];
    case "GRACE":
      return [];
    case "SUSPENDED":
      return from.state === "PENDING" ? [] : ["SUSPEND", "RENEW_LEASE"];
    case "ACTIVE":
      return from.state === "PENDING" ? [] : ["REACTIVATE", "RENEW_LEASE"];
  }
}

/**
 * The audit action recording a transition. Operator commands audit themselves too
 * (license.revoke, license.rebind, subscription.update); the transition's record is about what
 * happened to the deployment:
 * - → LOCKED(REVOKED): deployment.lock
 * - → LOCKED(EXPIRED): license.expire (nothing else records the end of a term)
 * - → LOCKED(OFFLINE), → GRACE: deployment.offline
 * - GRACE or LOCKED(OFFLINE) → ACTIVE: deployment.online (the box came back)
 * - other → ACTIVE (SUSPENDED, LOCKED(EXPIRED) after a new term): deployment.reactivate
 * - → SUSPENDED (not from PENDING): deployment.suspend
 * - PENDING → ACTIVE/SUSPENDED/GRACE: license.activate (the activation handler may write one event for both)
 * - → PENDING: license.rebind (the licence was unbound and awaits the new box)
 */
export function auditActionFor(transition: Transition): AuditAction {
  const { from, to } = transition;
  if (to.state === "LOCKED") {
    if (to.lockReason === "EXPIRED") return "license.expire";
    if (to.lockReason === "OFFLINE") return "deployment.offline";
    return "deployment.lock";
  }
  if (to.state === "PENDING") return "license.rebind";
  if (from.state === "PENDING") return "license.activate";
  if (to.state === "GRACE") return "deployment.offline";
  if (to.state === "SUSPENDED") return "deployment.suspend";
  // to ACTIVE
  if (from.state === "GRACE" || (from.state === "LOCKED" && from.lockReason === "OFFLINE")) return "deployment.online";
  return "deployment.reactivate";
}
