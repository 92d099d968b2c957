/**
 * The deployment's state, derived from its facts (docs/design.md §5). Facts are the truth; the state is
 * never set directly, only re-derived, so every replica and every sweep agrees on it.
 */
import { leaseLifetimeMs } from "./lease.js";
import type { Settings } from "./settings.js";

/** The states a deployment can be in, as in `licensing.v1.DeploymentState`. */
export const DEPLOYMENT_STATES = ["PENDING", "ACTIVE", "GRACE", "SUSPENDED", "LOCKED"] as const;

/** A deployment's derived state. */
export type DeploymentState = (typeof DEPLOYMENT_STATES)[number];

/** Why a deployment is LOCKED, as in `licensing.v1.LockReason`. */
export const LOCK_REASONS = ["REVOKED", "EXPIRED", "OFFLINE"] as const;

/** Why a deployment is LOCKED. */
export type LockReason = (typeof LOCK_REASONS)[number];

/** What is known about a deployment and its current licence; times are epoch milliseconds. */
export interface DeploymentFacts {
  /** The licence was revoked (for ever). */
  readonly licenseRevoked: boolean;
  /** The end of the licence term; null when no licence was issued yet. */
  readonly licenseExpiresAt: number | null;
  /** When a box first activated the licence; null until then (and again after a rebind). */
  readonly activatedAt: number | null;
  /** Hash of the bound box's fingerprint; null while unbound. */
  readonly boundFingerprintHash: string | null;
  /**
   * Server time of the last accepted activation or heartbeat; for an air-gapped deployment also
   * of the last activation or renewal answered by file.
   */
  readonly lastSeenAt: number | null;
  /** The customer's subscription is in good standing. */
  readonly subscriptionValid: boolean;
  /**
   * The box is AIR_GAPPED (docs/design.md §15): it never heartbeats, so its health is its lease —
   * ACTIVE while the last lease answered by file is valid, never GRACE.
   */
  readonly airGapped: boolean;
}

/** A derived state and, when LOCKED, why; `lockReason` is null otherwise. */
export interface DerivedState {
  readonly state: DeploymentState;
  readonly lockReason: LockReason | null;
}

/** The facts of a freshly provisioned deployment: no licence yet, valid subscription. */
export const INITIAL_FACTS: Readonly<DeploymentFacts> = Object.freeze({
  licenseRevoked: false,
  licenseExpiresAt: null,
  activatedAt: null,
  boundFingerprintHash: null,
  lastSeenAt: null,
  subscriptionValid: true,
  airGapped: false,
});

/** Whether the licence term has ended at `now` (the term end itself is already expired). */
export function isLicenseExpired(facts: DeploymentFacts, now: number): boolean {
  return facts.licenseExpiresAt !== null && now >= facts.licenseExpiresAt;
}

const derived = (state: DeploymentState, lockReason: LockReason | null = null): DerivedState => ({
  state,
  lockReason,
});

/**
 * Derives a deployment's state from its facts at `now`. The order of the checks is the policy:
 * the first that applies wins.
 */
export function deriveState(facts: DeploymentFacts, now: number, settings: Settings): DerivedState {
  // Revocation outranks everything, expiry included: a revoked box must never come back by
  // renewing its term, and the operator's anti-theft lever must read as REVOKED, not EXPIRED.
  if (facts.licenseRevoked) return derived("LOCKED", "REVOKED");
  // No licence issued yet: nothing to activate, so the deployment waits.
  if (facts.licenseExpiresAt === null) return derived("PENDING");
  // Expiry before activation: an expired licence can never be activated, so it is LOCKED, not PENDING.
  if (isLicenseExpired(facts, now)) return derived("LOCKED", "EXPIRED");
  // Unbound (never activated, or rebound and awaiting the new box): no box runs on it yet.
  if (facts.activatedAt === null || facts.boundFingerprintHash === null) return derived("PENDING");
  // Activation always records lastSeenAt; fall back to activatedAt for facts written before it.
  const lastSeen = facts.lastSeenAt ?? facts.activatedAt;
  const silentFor = now - lastSeen;
  // Silent past its lease's lifetime (the grace window; air_gapped_lease for an air-gapped box)
  // outranks a suspension: the box's lease has run out either way, and a stolen box must stop
  // whatever its subscription says. Strictly greater: at exactly the lifetime the lease still holds.
  if (silentFor > leaseLifetimeMs(facts, settings)) return derived("LOCKED", "OFFLINE");
  // Suspension outranks GRACE: it is the operator's decision, and the box learns it as a SUSPENDED
  // lease the moment it reconnects.
  if (!facts.subscriptionValid) return derived("SUSPENDED");
  // An air-gapped box is never expected to beat: silence is its normal, so it is never GRACE.
  // Strictly greater: a beat exactly at the timeout still counts as healthy.
  if (!facts.airGapped && silentFor > settings.heartbeatTimeoutMs) return derived("GRACE");
  return derived("ACTIVE");
}

/** Whether two derived states are the same, lock reason included. */
export function sameDerivedState(a: DerivedState, b: DerivedState): boolean {
  return a.state === b.state && a.lockReason === b.lockReason;
}
