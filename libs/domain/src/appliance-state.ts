/**
 * What a box decides OFFLINE from its last verified lease (used by libs/appliance-sdk). The box
 * cannot ask anyone, so it trusts only the signed lease and the highest time it has ever seen.
 */

/** The states a box can put itself in. */
export type ApplianceState = "ACTIVE" | "GRACE" | "SUSPENDED" | "LOCKED";

/** Why a box is LOCKED. */
export type ApplianceLockReason = "REVOKED" | "LEASE_EXPIRED" | "CLOCK_TAMPERED" | "LOCK_DIRECTIVE" | "NO_LEASE";

/** The verified claims of the box's lease that matter here; times are epoch ms (JWT seconds × 1000). */
export interface ApplianceLease {
  readonly st: "ACTIVE" | "SUSPENDED";
  readonly exp: number;
  readonly iat: number;
  readonly seq: number;
}

/** Inputs of {@link evaluateApplianceState}. */
export interface ApplianceStateInput {
  /** The last lease whose signature verified, or null if none. */
  readonly lease: ApplianceLease | null;
  /** The control plane sent LOCK (persisted by the box: it survives restarts). */
  readonly lockedByDirective: boolean;
  /** The control plane refused the box with LICENSE_REVOKED (persisted likewise). */
  readonly revoked?: boolean;
  /** The box's clock, epoch ms. */
  readonly now: number;
  /** The highest time the box has ever observed (its own clock, server times, lease iat). */
  readonly watermark: number;
  /** The box currently holds a healthy stream to the control plane. */
  readonly connected: boolean;
  /** How far the clock may fall below the watermark before it counts as tampering. */
  readonly maxClockSkewMs: number;
}

/** The box's verdict on itself, and the watermark to persist for next time. */
export interface ApplianceStateResult {
  readonly state: ApplianceState;
  /** Set when LOCKED. */
  readonly reason?: ApplianceLockReason;
  /** The new watermark: never lowered, and not raised by a clock judged tampered. */
  readonly watermark: number;
}

/**
 * Evaluates the box's state offline. Order: revoked → clock moved back (more than maxClockSkew
 * below the watermark, lease iat included) → LOCK directive → no lease → lease expired
 * (now ≥ exp) → lease SUSPENDED → not connected (GRACE) → ACTIVE.
 */
export function evaluateApplianceState(input: ApplianceStateInput): ApplianceStateResult {
  const { lease, now, connected, maxClockSkewMs } = input;
  // The lease's iat is a server time the box has seen: winding the clock back before it is the
  // obvious way to stretch an expiring lease, so it raises the watermark like any observation.
  const seen = Math.max(input.watermark, lease?.iat ?? Number.NEGATIVE_INFINITY);
  const locked = (reason: ApplianceLockReason, watermark = Math.max(seen, now)): ApplianceStateResult => ({
    state: "LOCKED",
    reason,
    watermark,
  });
  if (input.revoked === true) return locked("REVOKED");
  // A stolen box's thief rolls the clock back to keep the lease alive; small drift is tolerated.
  if (now < seen - maxClockSkewMs) return locked("CLOCK_TAMPERED", seen);
  const watermark = Math.max(seen, now);
  if (input.lockedByDirective) return locked("LOCK_DIRECTIVE");
  if (lease === null) return locked("NO_LEASE");
  if (now >= lease.exp) return locked("LEASE_EXPIRED");
  if (lease.st === "SUSPENDED") return { state: "SUSPENDED", watermark };
  if (!connected) return { state: "GRACE", watermark };
  return { state: "ACTIVE", watermark };
}
