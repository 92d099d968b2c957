/**
 * Licensing settings (screen licensing/settings): the timings every rule reads. Durations are
 * milliseconds. Tests shrink them to seconds, so every lower bound is at most one second.
 */
import { DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS, formatDuration } from "./duration.js";
import { refuse, type Verdict } from "./verdict.js";

/** The licensing timings; all durations in milliseconds. */
export interface Settings {
  /** How often a box sends a beat on its stream. */
  readonly heartbeatIntervalMs: number;
  /** Silence longer than this moves an ACTIVE deployment to GRACE. */
  readonly heartbeatTimeoutMs: number;
  /** How long a box may run offline on its lease before it locks down; also the lease lifetime. */
  readonly graceWindowMs: number;
  /** A lease older than this is re-signed on the next heartbeat. */
  readonly leaseRenewAfterMs: number;
  /** How far a box's clock may fall behind the latest time it has seen before it counts as tampering. */
  readonly maxClockSkewMs: number;
  /** How often the fleet sweep runs. */
  readonly sweepIntervalMs: number;
  /**
   * The lease lifetime of an AIR_GAPPED deployment's box (answered by file): how long it runs
   * unheard before it locks, and how long a revoked air-gapped box may keep running.
   */
  readonly airGappedLeaseMs: number;
  /** How old an air-gapped box's lease gets before it asks for the next by file. */
  readonly airGappedRenewAfterMs: number;
}

/** The defaults of docs/design.md §5 and §15: 60 s, 5 min, 14 d, 1 h, 5 min, 1 min; air-gapped 90 d, 60 d. */
export const DEFAULT_SETTINGS: Readonly<Settings> = Object.freeze({
  heartbeatIntervalMs: 60 * SECOND_MS,
  heartbeatTimeoutMs: 5 * MINUTE_MS,
  graceWindowMs: 14 * DAY_MS,
  leaseRenewAfterMs: HOUR_MS,
  maxClockSkewMs: 5 * MINUTE_MS,
  sweepIntervalMs: MINUTE_MS,
  airGappedLeaseMs: 90 * DAY_MS,
  airGappedRenewAfterMs: 60 * DAY_MS,
});

/** The proto (snake_case) name of each setting, used in messages and `Refusal.field`. */
export const SETTING_FIELD_NAMES: Readonly<Record<keyof Settings, string>> = Object.freeze({
  heartbeatIntervalMs: "heartbeat_interval",
  heartbeatTimeoutMs: "heartbeat_timeout",
  graceWindowMs: "grace_window",
  leaseRenewAfterMs: "lease_renew_after",
  maxClockSkewMs: "max_clock_skew",
  sweepIntervalMs: "sweep_interval",
  airGappedLeaseMs: "air_gapped_lease",
  airGappedRenewAfterMs: "air_gapped_renew_after",
});

/** Bounds on the grace window: 1 s to 365 d. */
export const GRACE_WINDOW_RANGE_MS = { min: SECOND_MS, max: 365 * DAY_MS } as const;
/** Bounds on the heartbeat interval: 1 s to 1 h. */
export const HEARTBEAT_INTERVAL_RANGE_MS = { min: SECOND_MS, max: HOUR_MS } as const;
/** Bounds on the tolerated clock skew: 0 to 1 d. */
export const MAX_CLOCK_SKEW_RANGE_MS = { min: 0, max: DAY_MS } as const;
/** Bounds on the sweep interval: 1 s to 1 d. */
export const SWEEP_INTERVAL_RANGE_MS = { min: SECOND_MS, max: DAY_MS } as const;
/** Lower bound on lease_renew_after (its upper bound is the grace window). */
export const LEASE_RENEW_AFTER_MIN_MS = SECOND_MS;
/** Bounds on the air-gapped lease: 1 s to 400 d (a site visited a few times a year). */
export const AIR_GAPPED_LEASE_RANGE_MS = { min: SECOND_MS, max: 400 * DAY_MS } as const;
/** Lower bound on air_gapped_renew_after (its upper bound is the air-gapped lease). */
export const AIR_GAPPED_RENEW_AFTER_MIN_MS = SECOND_MS;

function outOfRange(key: keyof Settings, value: number, range: string) {
  const name = SETTING_FIELD_NAMES[key];
  return refuse(
    "SETTINGS_OUT_OF_RANGE",
    `${name} must be ${range} (got ${formatDuration(value)})`,
    name,
  );
}

function within(value: number, min: number, max: number): boolean {
  return Number.isFinite(value) && value >= min && value <= max;
}

/**
 * A renewal age `key` must be at least `min` and strictly below the lease it renews (`lease`),
 * or the lease would run out on the box before it is renewed. The refusal, or null when it holds.
 */
function renewsBefore(s: Settings, key: keyof Settings, min: number, lease: keyof Settings) {
  if (Number.isFinite(s[key]) && s[key] >= min && s[key] < s[lease]) return null;
  return outOfRange(key, s[key], `at least ${formatDuration(min)} and less than ${SETTING_FIELD_NAMES[lease]} (${formatDuration(s[lease])})`);
}

/**
 * Checks a complete set of settings against the allowed ranges and their relations. Returns the
 * settings on success, or the first offending field as `SETTINGS_OUT_OF_RANGE` with a message
 * naming the field and its range.
 */
export function validateSettings(s: Settings): Verdict<{ settings: Settings }> {
  const g = GRACE_WINDOW_RANGE_MS;
  // The grace window first: the other bounds are relative to it.
  if (!within(s.graceWindowMs, g.min, g.max)) {
    return outOfRange("graceWindowMs", s.graceWindowMs, `between ${formatDuration(g.min)} and ${formatDuration(g.max)}`);
  }
  const hi = HEARTBEAT_INTERVAL_RANGE_MS;
  if (!within(s.heartbeatIntervalMs, hi.min, hi.max)) {
    return outOfRange("heartbeatIntervalMs", s.heartbeatIntervalMs, `between ${formatDuration(hi.min)} and ${formatDuration(hi.max)}`);
  }
  // A timeout at or below the interval would flap every healthy box into GRACE between beats;
  // one at or above the grace window would skip GRACE entirely.
  if (
    !Number.isFinite(s.heartbeatTimeoutMs) ||
    s.heartbeatTimeoutMs <= s.heartbeatIntervalMs ||
    s.heartbeatTimeoutMs >= s.graceWindowMs
  ) {
    return outOfRange(
      "heartbeatTimeoutMs",
      s.heartbeatTimeoutMs,
      `greater than heartbeat_interval (${formatDuration(s.heartbeatIntervalMs)}) and less than grace_window (${formatDuration(s.graceWindowMs)})`,
    );
  }
  // Strictly below the grace window: a lease (valid for grace_window) renewed only when that old
  // would already have expired on the box, locking a healthy appliance until its next beat.
  const renewal = renewsBefore(s, "leaseRenewAfterMs", LEASE_RENEW_AFTER_MIN_MS, "graceWindowMs");
  if (renewal) return renewal;
  const sk = MAX_CLOCK_SKEW_RANGE_MS;
  if (!within(s.maxClockSkewMs, sk.min, sk.max)) {
    return outOfRange("maxClockSkewMs", s.maxClockSkewMs, `between 0 and ${formatDuration(sk.max)}`);
  }
  const sw = SWEEP_INTERVAL_RANGE_MS;
  if (!within(s.sweepIntervalMs, sw.min, sw.max)) {
    return outOfRange("sweepIntervalMs", s.sweepIntervalMs, `between ${formatDuration(sw.min)} and ${formatDuration(sw.max)}`);
  }
  const ag = AIR_GAPPED_LEASE_RANGE_MS;
  if (!within(s.airGappedLeaseMs, ag.min, ag.max)) {
    return outOfRange("airGappedLeaseMs", s.airGappedLeaseMs, `between ${formatDuration(ag.min)} and ${formatDuration(ag.max)}`);
  }
  // Strictly below the lease, for the reason lease_renew_after is below the grace window: a box
  // asking only once its lease has run out would be locked until the answer is carried back.
  return renewsBefore(s, "airGappedRenewAfterMs", AIR_GAPPED_RENEW_AFTER_MIN_MS, "airGappedLeaseMs") ?? { ok: true, settings: { ...s } };
}

/**
 * Applies a partial update (UpdateSettings with some fields unset) to the current settings and
 * validates the result as a whole, since the ranges relate fields to each other.
 */
export function applySettingsPatch(
  current: Settings,
  patch: Partial<Settings>,
): Verdict<{ settings: Settings }> {
  const merged: Settings = { ...current };
  for (const key of Object.keys(SETTING_FIELD_NAMES) as Array<keyof Settings>) {
    const value = patch[key];
    if (value !== undefined) (merged as Record<keyof Settings, number>)[key] = value;
  }
  return validateSettings(merged);
}
