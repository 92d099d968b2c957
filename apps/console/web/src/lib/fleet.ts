/**
 * The fleet as the Heartbeats screen charts it: the deployments by derived state now
 * (GetFleetSummary), and the state changes per hour over the last day (audit CountEvents).
 * Pure: the screen feeds it the answers and draws what comes out.
 */
import { durationFromMs, timestampFromMs, type Duration, type Timestamp } from "@bufbuild/protobuf/wkt";
import { auditActionFor, DEPLOYMENT_STATES, HOUR_MS, LOCK_REASONS, transitionOf, type DerivedState } from "@lcp/domain";
import { DeploymentState, LockReason } from "@lcp/proto/licensing/v1/types_pb";
import { LOCK_REASON_LABELS, STATE_LABELS } from "./format.js";

// ---- The fleet by state now ----

/** One bar of the fleet chart: a state (LOCKED split by its reason) and how many are in it. */
export interface FleetSegment {
  /** A stable key ("ACTIVE", "LOCKED_OFFLINE") for React and CSS. */
  readonly key: string;
  readonly state: DeploymentState;
  readonly lockReason: LockReason;
  /** In words: "Active", "Locked (offline)". */
  readonly label: string;
  readonly count: number;
}

/** What GetFleetSummary counts: a state, a lock reason for LOCKED, a count. */
export interface FleetCountInput {
  readonly state: DeploymentState;
  readonly lockReason: LockReason;
  readonly count: bigint | number;
}

// The order operators read the fleet in: serving, then at risk, then not serving.
const SEGMENT_ORDER: ReadonlyArray<readonly [DeploymentState, LockReason]> = [
  [DeploymentState.ACTIVE, LockReason.UNSPECIFIED],
  [DeploymentState.GRACE, LockReason.UNSPECIFIED],
  [DeploymentState.SUSPENDED, LockReason.UNSPECIFIED],
  [DeploymentState.PENDING, LockReason.UNSPECIFIED],
  [DeploymentState.LOCKED, LockReason.OFFLINE],
  [DeploymentState.LOCKED, LockReason.EXPIRED],
  [DeploymentState.LOCKED, LockReason.REVOKED],
];

function segmentKey(state: DeploymentState, lockReason: LockReason): string {
  const name = DeploymentState[state] ?? `STATE_${state}`;
  return state === DeploymentState.LOCKED ? `${name}_${LockReason[lockReason] ?? `REASON_${lockReason}`}` : name;
}

function segmentLabel(state: DeploymentState, lockReason: LockReason): string {
  const label = STATE_LABELS[state] ?? `Unknown (${state})`;
  if (state !== DeploymentState.LOCKED) return label;
  const reason = LOCK_REASON_LABELS[lockReason];
  return reason ? `${label} (${reason})` : `${label} (reason not given)`;
}

/**
 * The fleet chart's bars: every state of the states table in reading order, zeros included (an
 * operator sees "0 locked" rather than a missing bar), then anything this build does not know
 * (a new state, LOCKED without a reason) when it has deployments. Counts for the same bar add up.
 */
export function fleetSegments(counts: readonly FleetCountInput[]): FleetSegment[] {
  const byKey = new Map<string, FleetSegment>();
  const add = (state: DeploymentState, lockReason: LockReason, count: number) => {
    // The lock reason only splits LOCKED; anywhere else it is noise.
    const reason = state === DeploymentState.LOCKED ? lockReason : LockReason.UNSPECIFIED;
    const key = segmentKey(state, reason);
    const prev = byKey.get(key);
    byKey.set(key, { key, state, lockReason: reason, label: segmentLabel(state, reason), count: (prev?.count ?? 0) + count });
  };
  for (const [state, reason] of SEGMENT_ORDER) add(state, reason, 0);
  for (const c of counts) {
    const n = Number(c.count);
    if (Number.isFinite(n) && n > 0) add(c.state, c.lockReason, n);
  }
  return [...byKey.values()];
}

/** The fleet chart in one sentence, for its accessible name. */
export function fleetSummaryText(segments: readonly FleetSegment[], total: number, at: string): string {
  const parts = segments.map((s) => `${s.label} ${s.count}`);
  return `Deployments by state at ${at}: ${total} in total; ${parts.join(", ")}.`;
}

// ---- State changes per hour ----

/**
 * The audit actions that record a change of derived state: every action `auditActionFor` can
 * give, found by asking it about every pair of states, so a new transition action in the
 * domain shows in the chart without an edit here. (Revocation is recorded on the deployment as
 * deployment.lock; license.revoke is the operator's command on the licence, not a transition.)
 */
export const STATE_CHANGE_ACTIONS: readonly string[] = (() => {
  const states = DEPLOYMENT_STATES.flatMap((state): DerivedState[] =>
    state === "LOCKED" ? LOCK_REASONS.map((lockReason) => ({ state, lockReason })) : [{ state, lockReason: null }],
  );
  const found = new Set<string>();
  for (const from of states) {
    for (const to of states) {
      const t = transitionOf(from, to);
      if (t) found.add(auditActionFor(t));
    }
  }
  return [...found].sort();
})();

/** Whether a state change takes a deployment out of service or back into it. */
export type ChangeDirection = "left" | "returned";

/** Each state-change action in words, and which way it goes. */
export const STATE_CHANGE_INFO: Readonly<Record<string, { readonly label: string; readonly direction: ChangeDirection }>> = {
  "deployment.offline": { label: "Went offline (grace, or locked offline)", direction: "left" },
  "deployment.lock": { label: "Locked (licence revoked)", direction: "left" },
  "deployment.suspend": { label: "Suspended", direction: "left" },
  "license.expire": { label: "Licence expired", direction: "left" },
  "license.rebind": { label: "Rebound, waiting for the new box", direction: "left" },
  "deployment.online": { label: "Came back online", direction: "returned" },
  "deployment.reactivate": { label: "Reactivated", direction: "returned" },
  "license.activate": { label: "Activated", direction: "returned" },
};

/** The words and direction of an action; an action this build does not know counts as leaving. */
export function stateChangeInfo(action: string): { readonly label: string; readonly direction: ChangeDirection } {
  return STATE_CHANGE_INFO[action] ?? { label: action, direction: "left" };
}

/** The hours the chart covers: `hours` buckets of one hour, the last being the current hour. */
export interface HourWindow {
  readonly startMs: number;
  /** The end of the current hour (after now: the last bucket is "so far"). */
  readonly endMs: number;
  readonly hours: number;
}

/** `ms` rounded down to the start of its hour (UTC hours: every bucket is a whole hour). */
export function floorToHour(ms: number): number {
  return Math.floor(ms / HOUR_MS) * HOUR_MS;
}

/**
 * The last `hours` hours aligned to the hour: from the start of the hour `hours - 1` hours
 * before the current one to the end of the current one. It changes only when the hour does,
 * so the query that asks for it keeps one cache entry per hour.
 */
export function hourWindow(nowMs: number, hours = 24): HourWindow {
  const current = floorToHour(nowMs);
  return { startMs: current - (hours - 1) * HOUR_MS, endMs: current + HOUR_MS, hours };
}

/** The CountEvents request for a window: the state-change actions on deployments, per hour. */
export function stateChangeCountRequest(window: HourWindow): {
  actions: string[];
  resourceType: string;
  startTime: Timestamp;
  endTime: Timestamp;
  bucketWidth: Duration;
} {
  return {
    actions: [...STATE_CHANGE_ACTIONS],
    // Transitions are recorded on the deployment; the same action names on a licence are the
    // operator's command (and its refusals), which CountEvents could not tell apart by outcome.
    resourceType: "deployment",
    startTime: timestampFromMs(window.startMs),
    endTime: timestampFromMs(window.endMs),
    bucketWidth: durationFromMs(HOUR_MS),
  };
}

/** One hour of the chart. */
export interface HourBucket {
  readonly startMs: number;
  /** Counts by action (only the actions asked for). */
  readonly byAction: Readonly<Record<string, number>>;
  readonly left: number;
  readonly returned: number;
  readonly total: number;
  /** The current hour: counted so far. */
  readonly partial: boolean;
}

/** What CountEvents answers per (bucket, action), times in epoch ms. */
export interface EventCountInput {
  readonly bucketStartMs: number;
  readonly action: string;
  readonly count: bigint | number;
}

/**
 * Folds CountEvents' non-empty (bucket, action) pairs into one bucket per hour of the window,
 * zeros included. Counts outside the window or of actions not asked for are left out.
 */
export function hourlyBuckets(window: HourWindow, counts: readonly EventCountInput[], nowMs: number, actions: readonly string[] = STATE_CHANGE_ACTIONS): HourBucket[] {
  const wanted = new Set(actions);
  const rows = Array.from({ length: window.hours }, () => new Map<string, number>());
  for (const c of counts) {
    if (!wanted.has(c.action)) continue;
    const index = Math.floor((c.bucketStartMs - window.startMs) / HOUR_MS);
    const n = Number(c.count);
    const row = rows[index];
    if (!row || !Number.isFinite(n) || n <= 0) continue;
    row.set(c.action, (row.get(c.action) ?? 0) + n);
  }
  const current = floorToHour(nowMs);
  return rows.map((row, i) => {
    const startMs = window.startMs + i * HOUR_MS;
    let left = 0;
    let returned = 0;
    for (const [action, n] of row) {
      if (stateChangeInfo(action).direction === "returned") returned += n;
      else left += n;
    }
    return { startMs, byAction: Object.fromEntries(row), left, returned, total: left + returned, partial: startMs === current };
  });
}

/** Totals per action over the whole window, in the order of `actions`, zeros left out. */
export function actionTotals(buckets: readonly HourBucket[], actions: readonly string[] = STATE_CHANGE_ACTIONS): Array<{ action: string; count: number }> {
  return actions
    .map((action) => ({ action, count: buckets.reduce((n, b) => n + (b.byAction[action] ?? 0), 0) }))
    .filter((t) => t.count > 0);
}

/** The hourly chart in one sentence, for its accessible name. `hourLabel` formats a bucket's start. */
export function hourlySummaryText(buckets: readonly HourBucket[], hourLabel: (ms: number) => string): string {
  const total = buckets.reduce((n, b) => n + b.total, 0);
  const hours = buckets.length;
  if (total === 0) return `No state changes in the last ${hours} hours.`;
  const left = buckets.reduce((n, b) => n + b.left, 0);
  const busiest = buckets.reduce((a, b) => (b.total > a.total ? b : a));
  return (
    `State changes per hour over the last ${hours} hours: ${total} in total, ${left} out of service and ${total - left} back into service; ` +
    `the busiest hour began at ${hourLabel(busiest.startMs)} with ${busiest.total}.`
  );
}
