/**
 * The judgement of one heartbeat on a box's cached facts (docs/design.md §5): the hot path of a
 * held stream decides in memory whether a beat only marks the box seen, changes its derived state
 * (and so must go through the one change path), or is refused — and whether the lease it holds is
 * due for re-signing.
 */
import { heartbeat, heartbeatRefusalLocksBox } from "./events.js";
import { leaseStateFor, needsNewLease } from "./lease.js";
import type { Settings } from "./settings.js";
import { deriveState, sameDerivedState, type DeploymentFacts, type DerivedState } from "./state.js";
import type { DomainCode } from "./verdict.js";

/**
 * What a beat does: `seen` (the derived state is unchanged: mark the box seen), `change` (the
 * derived state would change: take the recorded path) or `refused` (`locks` when the box must stop).
 */
export type BeatJudgement =
  | { readonly kind: "seen"; readonly derived: DerivedState }
  | { readonly kind: "change" }
  | { readonly kind: "refused"; readonly code: DomainCode; readonly message: string; readonly locks: boolean };

/** Judges a beat of the box with `fingerprintHash` at `now` against the facts and the state last stored. */
export function judgeBeat(facts: DeploymentFacts, stored: DerivedState, fingerprintHash: string, now: number, settings: Settings): BeatJudgement {
  const verdict = heartbeat(facts, fingerprintHash, now);
  if (!verdict.ok) return { kind: "refused", code: verdict.code, message: verdict.message, locks: heartbeatRefusalLocksBox(verdict.code) };
  const derived = deriveState(verdict.facts, now, settings);
  if (!sameDerivedState(derived, stored)) return { kind: "change" };
  return { kind: "seen", derived };
}

/** The lease a box was last given, as a session remembers it (`issuedAt` null when none was). */
export interface HeldLease {
  /** The state last stored, which the last lease was signed for. */
  readonly stored: DerivedState;
  readonly seq: number;
  readonly issuedAt: number | null;
}

/** Whether a box in state `derived` at `now` is due a new lease, given the one it was last given. */
export function beatLeaseDue(held: HeldLease, derived: DerivedState, now: number, settings: Settings): boolean {
  const state = leaseStateFor(held.stored);
  return needsNewLease({
    lastLease: held.issuedAt === null || state === null ? null : { issuedAt: held.issuedAt, seq: held.seq, state },
    derivedLeaseState: leaseStateFor(derived),
    now,
    settings,
  });
}
