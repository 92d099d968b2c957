/**
 * Why a deployment is in its state, in a sentence: the derived state (docs/design.md §5, the
 * README's states table) told from the facts the console can see.
 */
import { DeploymentState, LicenseStatus, LockReason, SubscriptionStatus } from "@lcp/proto/licensing/v1/types_pb";
import { formatElapsed } from "./duration.js";

/** The facts a verdict sentence is told from; times in epoch ms, null when unknown. */
export interface VerdictFacts {
  readonly state: DeploymentState;
  readonly lockReason: LockReason;
  readonly subscription: SubscriptionStatus;
  /** Null when the deployment has no licence yet. */
  readonly licenseStatus: LicenseStatus | null;
  readonly licenseExpiresAt: number | null;
  readonly lastSeenAt: number | null;
  /** The grace window setting, when known: tells when a box in GRACE will lock. */
  readonly graceWindowMs: number | null;
  /**
   * The box is air-gapped (docs/design.md §15): it never heartbeats, its health is the lease last
   * answered by file, and "last seen" is when that answer was signed.
   */
  readonly airGapped?: boolean;
}

function since(at: number | null, now: number): string {
  return at === null ? "" : ` (last seen ${formatElapsed(Math.max(0, now - at))} ago)`;
}

function answered(at: number | null, now: number): string {
  return at === null ? "" : ` (last answered ${formatElapsed(Math.max(0, now - at))} ago)`;
}

/** The state explained in one or two sentences; see the module comment. */
export function explainState(f: VerdictFacts, now: number): string {
  const subscription =
    f.subscription === SubscriptionStatus.INVALID
      ? " Its subscription is invalid, so it will be suspended as soon as its licence allows it to run."
      : "";
  switch (f.state) {
    case DeploymentState.ACTIVE:
      if (f.airGapped) return `Active: the air-gapped box is bound to its licence and runs on the lease last answered by file${answered(f.lastSeenAt, now)}.`;
      return `Active: the box is bound to its licence, heartbeating, and the subscription is valid${since(f.lastSeenAt, now)}.`;
    case DeploymentState.PENDING:
      if (f.licenseStatus === null) return "Pending: no licence has been issued for this deployment yet.";
      return `Pending: no box has activated the licence yet, or it was rebound and waits for the new box to activate.${subscription}`;
    case DeploymentState.GRACE: {
      const lockAt = f.lastSeenAt !== null && f.graceWindowMs !== null ? f.lastSeenAt + f.graceWindowMs : null;
      const when = lockAt !== null ? ` It locks itself in ${formatElapsed(Math.max(0, lockAt - now))} unless it reconnects.` : "";
      return `Grace: the box has been silent longer than the heartbeat timeout${since(f.lastSeenAt, now)} and runs on its signed lease.${when}${subscription}`;
    }
    case DeploymentState.SUSPENDED:
      return "Suspended: the subscription is invalid. The box stays connected but stops its licensed work until the subscription is restored.";
    case DeploymentState.LOCKED:
      switch (f.lockReason) {
        case LockReason.REVOKED:
          return "Locked because its licence was revoked: no box can ever activate this licence again.";
        case LockReason.EXPIRED:
          return "Locked because its licence term has ended. Issuing a new licence reactivates it.";
        case LockReason.OFFLINE:
          if (f.airGapped) return `Locked because the air-gapped box's lease has run out${answered(f.lastSeenAt, now)}. Answering its next renewal request on the Offline page makes it active again.`;
          return `Locked because the box has been offline longer than the grace window${since(f.lastSeenAt, now)}. Its first healthy heartbeat makes it active again.`;
        default:
          return "Locked.";
      }
    default:
      return "The state of this deployment is not known.";
  }
}
