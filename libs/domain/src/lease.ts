/**
 * Lease math (docs/design.md §6): a lease is the signed permission a box runs on while offline. It is
 * valid for the grace window (air_gapped_lease for an air-gapped box, docs/design.md §15) and
 * re-signed only when old or when the state changes, never on every heartbeat (signing is the
 * expensive part of the hot path).
 */
import type { Settings } from "./settings.js";
import type { DeploymentFacts, DerivedState } from "./state.js";

/** The state a lease carries (`st`): the box serves when ACTIVE, stays up but refuses work when SUSPENDED. */
export type LeaseState = "ACTIVE" | "SUSPENDED";

/** What the server remembers of the last lease it issued for a licence. */
export interface IssuedLease {
  /** Server time the lease was signed (`iat`), epoch ms. */
  readonly issuedAt: number;
  /** Its sequence number (`seq`). */
  readonly seq: number;
  /** Its state (`st`). */
  readonly state: LeaseState;
}

/**
 * The lease state for a derived state, or null when no lease may be issued (PENDING: nothing is
 * bound; LOCKED: the box must stop, and a fresh lease would keep it running). GRACE maps to
 * ACTIVE: a box in grace that reaches us is, by that very beat, active again.
 */
export function leaseStateFor(derived: DerivedState): LeaseState | null {
  switch (derived.state) {
    case "ACTIVE":
    case "GRACE":
      return "ACTIVE";
    case "SUSPENDED":
      return "SUSPENDED";
    case "PENDING":
    case "LOCKED":
      return null;
  }
}

/** Inputs of {@link needsNewLease}. */
export interface NeedsNewLeaseInput {
  readonly lastLease: IssuedLease | null;
  /** From {@link leaseStateFor}; null means no lease may be issued. */
  readonly derivedLeaseState: LeaseState | null;
  readonly now: number;
  readonly settings: Settings;
}

/**
 * Whether to sign a new lease now: never when no lease may be issued; otherwise when there is
 * none yet, when its state differs from the derived one, or when it is at least
 * `leaseRenewAfterMs` old.
 */
export function needsNewLease({ lastLease, derivedLeaseState, now, settings }: NeedsNewLeaseInput): boolean {
  if (derivedLeaseState === null) return false;
  if (lastLease === null) return true;
  if (lastLease.state !== derivedLeaseState) return true;
  // A lease "from the future" (server clock stepped back) is re-signed too, so its expiry is
  // measured from a time the server actually saw.
  const age = now - lastLease.issuedAt;
  return age >= settings.leaseRenewAfterMs || age < 0;
}

/** The next lease sequence number: strictly increasing per licence, starting at 1. */
export function nextLeaseSeq(lastSeq: number | null): number {
  return lastSeq === null ? 1 : Math.max(0, Math.floor(lastSeq)) + 1;
}

/**
 * How long a lease signed for a deployment with these facts is valid: `air_gapped_lease` for an
 * air-gapped box (renewed by file, weeks apart), the grace window otherwise. It is also how long
 * the deployment may stay silent before it derives LOCKED(OFFLINE): the box locks itself then.
 */
export function leaseLifetimeMs(facts: Pick<DeploymentFacts, "airGapped">, settings: Settings): number {
  return facts.airGapped ? settings.airGappedLeaseMs : settings.graceWindowMs;
}

/**
 * How old a lease may get before the box should be given the next: `air_gapped_renew_after` for
 * an air-gapped box (when it writes its renewal request file), `lease_renew_after` otherwise.
 */
export function leaseRenewAfterMsFor(facts: Pick<DeploymentFacts, "airGapped">, settings: Settings): number {
  return facts.airGapped ? settings.airGappedRenewAfterMs : settings.leaseRenewAfterMs;
}

/**
 * When a lease signed at `issuedAt` expires (`exp = iat + grace_window`, or `iat +
 * air_gapped_lease` when `facts` say air-gapped).
 */
export function leaseExpiry(issuedAt: number, settings: Settings, facts: Pick<DeploymentFacts, "airGapped"> = { airGapped: false }): number {
  return issuedAt + leaseLifetimeMs(facts, settings);
}
