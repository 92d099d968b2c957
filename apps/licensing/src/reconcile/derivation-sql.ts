/**
 * `deriveState` (libs/domain) written as SQL, for the sweep: the database derives a whole page
 * in the scan that reads it, so an unchanged row never leaves the database and a changed one is
 * written by a set-based statement. The domain stays the definition — this is a transcription,
 * and `reconcile-derivation-sql-agrees-with-the-domain.test.ts` proves the two agree at every
 * boundary on both drivers.
 *
 * States travel as small integer codes (an integer CASE compares far cheaper per row than
 * concatenated text): one per derived state, lock reason included.
 */
import type { DeploymentState, DerivedState, LockReason, Settings } from "@lcp/domain";
import type { ConnectivityName } from "../storage/repository.js";

/** A derived state as one key: the state, or `LOCKED:<reason>`. */
export type DerivedStateKey = Exclude<DeploymentState, "LOCKED"> | `LOCKED:${LockReason}`;

/**
 * The code of each derived state, lock reason included (0 is "not a state": junk in the stored
 * columns). Keyed by every derived state, so one the domain gains without a code does not compile;
 * every SQL expression below takes its numbers from here.
 */
export const STATE_CODES = {
  PENDING: 1,
  ACTIVE: 2,
  GRACE: 3,
  SUSPENDED: 4,
  "LOCKED:OFFLINE": 5,
  "LOCKED:EXPIRED": 6,
  "LOCKED:REVOKED": 7,
} as const satisfies Record<DerivedStateKey, number>;

/** A state code as stored/derived in SQL. */
export type StateCode = (typeof STATE_CODES)[keyof typeof STATE_CODES];

const BY_CODE = new Map<number, DerivedState>(
  Object.entries(STATE_CODES).map(([key, code]) => {
    const [state, lockReason] = key.split(":");
    return [code, { state, lockReason: lockReason ?? null } as DerivedState];
  }),
);

/** Every derived state with its code, in code order. */
export const ALL_STATES: ReadonlyArray<{ code: StateCode; state: DerivedState }> = [...BY_CODE].map(([code, state]) => ({ code: code as StateCode, state }));

/** The derived state of a code; undefined for 0 or anything unknown. */
export function stateOfCode(code: number): DerivedState | undefined {
  return BY_CODE.get(code);
}

/** The code of a derived state. */
export function codeOfState(s: DerivedState): StateCode {
  return STATE_CODES[(s.lockReason ? `${s.state}:${s.lockReason}` : s.state) as DerivedStateKey];
}

/** The stored `connectivity` of an air-gapped deployment (repository.ts ConnectivityName). */
const AIR_GAPPED: ConnectivityName = "AIR_GAPPED";

/** A SQL expression over the deployment columns (qualified by `alias`), with its bound parameters in order. */
export interface SqlExpr {
  sql: string;
  params: unknown[];
}

/**
 * The stored state's code. A LOCKED row without a known reason, or another state carrying one,
 * is 0: never equal to a derived code, so the row always reaches the domain's own path.
 */
export function storedCodeSql(alias: string): string {
  const c = (name: string) => `${alias}.${name}`;
  const unlocked = Object.entries(STATE_CODES).filter(([key]) => !key.includes(":"));
  const locked = Object.entries(STATE_CODES).flatMap(([key, code]) => (key.startsWith("LOCKED:") ? [[key.slice("LOCKED:".length), code] as const] : []));
  const whens = (pairs: ReadonlyArray<readonly [string, number]>) => pairs.map(([name, code]) => `when '${name}' then ${code}`).join(" ");
  return (
    `case when ${c("lock_reason")} is null then ` +
    `(case ${c("state")} ${whens(unlocked)} else 0 end) ` +
    `when ${c("state")} = 'LOCKED' then (case ${c("lock_reason")} ${whens(locked)} else 0 end) ` +
    `else 0 end`
  );
}

/**
 * The derived state's code at `at`: the same checks in the same order as `deriveState`
 * (revoked, no licence, term ended, unbound, silent past its lease's lifetime — the grace window,
 * or air_gapped_lease for an AIR_GAPPED row — subscription invalid, silent past the timeout
 * unless AIR_GAPPED, active), the same strict boundaries, last seen falling back to the
 * activation time. The cut-offs are computed once here, so each row compares timestamps only.
 */
export function derivedCodeSql(alias: string, at: Date, settings: Settings, pg: boolean): SqlExpr {
  const c = (name: string) => `${alias}.${name}`;
  // MikroORM keeps SQLite datetimes as epoch milliseconds; PostgreSQL compares timestamptz.
  const t = (ms: number): unknown => (pg ? new Date(ms) : ms);
  const ts = pg ? "cast(? as timestamptz)" : "?";
  const now = at.getTime();
  const seen = `coalesce(${c("last_seen_at")}, ${c("activated_at")})`;
  const airGapped = `${c("connectivity")} = '${AIR_GAPPED}'`;
  const k = STATE_CODES;
  return {
    sql:
      `case when ${c("license_revoked_at")} is not null then ${k["LOCKED:REVOKED"]} ` +
      `when ${c("license_expires_at")} is null then ${k.PENDING} ` +
      // now >= expires_at
      `when ${c("license_expires_at")} <= ${ts} then ${k["LOCKED:EXPIRED"]} ` +
      `when ${c("activated_at")} is null or ${c("fingerprint_hash")} is null then ${k.PENDING} ` +
      // now - seen > lifetime  ⇔  seen < now - lifetime (air_gapped_lease or grace_window)
      `when ${seen} < (case when ${airGapped} then ${ts} else ${ts} end) then ${k["LOCKED:OFFLINE"]} ` +
      `when ${c("subscription_status")} = 'INVALID' then ${k.SUSPENDED} ` +
      // An air-gapped box is never GRACE.
      `when not ${airGapped} and ${seen} < ${ts} then ${k.GRACE} ` +
      `else ${k.ACTIVE} end`,
    params: [t(now), t(now - settings.airGappedLeaseMs), t(now - settings.graceWindowMs), t(now - settings.heartbeatTimeoutMs)],
  };
}

/**
 * True (never NULL) only for a row stored ACTIVE that still derives ACTIVE at `at`: licence not
 * revoked, term not ended, bound, subscription not INVALID, and seen within `heartbeat_timeout`
 * (within `air_gapped_lease` for an AIR_GAPPED row, which is never GRACE) — most of a healthy fleet. Each test is a comparison on one column, so a page skips such a row
 * before evaluating {@link storedCodeSql} and {@link derivedCodeSql}, the costly part of a page's
 * derivation. It does not fall back to the activation time: a row never seen is left to the full
 * derivation. Null-safe on purpose — `x >= ?` on a NULL is NULL, and `not (… and NULL)` would
 * drop the row from the page instead of deriving it — which the domain property test pins.
 */
export function settledActiveSql(alias: string, at: Date, settings: Settings, pg: boolean): SqlExpr {
  const c = (name: string) => `${alias}.${name}`;
  const t = (ms: number): unknown => (pg ? new Date(ms) : ms);
  const ts = pg ? "cast(? as timestamptz)" : "?";
  const now = at.getTime();
  return {
    sql:
      `(${c("state")} = 'ACTIVE' and ${c("lock_reason")} is null ` +
      // Seen within the timeout, hence within the grace window (both of derivedCodeSql's `seen < …`
      // false); an air-gapped row within its lease. `connectivity` is never NULL, nor is the CASE.
      `and ${c("last_seen_at")} is not null and ${c("last_seen_at")} >= (case when ${c("connectivity")} = '${AIR_GAPPED}' then ${ts} else ${ts} end) ` +
      `and ${c("license_revoked_at")} is null ` +
      `and ${c("license_expires_at")} is not null and ${c("license_expires_at")} > ${ts} ` +
      `and ${c("activated_at")} is not null and ${c("fingerprint_hash")} is not null ` +
      `and ${c("subscription_status")} <> 'INVALID')`,
    // Settings keep heartbeat_timeout below grace_window; the nearer cut-off holds either way.
    params: [t(now - settings.airGappedLeaseMs), t(now - Math.min(settings.heartbeatTimeoutMs, settings.graceWindowMs)), t(now)],
  };
}
