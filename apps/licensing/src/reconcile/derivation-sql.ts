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
import type { DerivedState, Settings } from "@lcp/domain";

/** The code of each derived state, lock reason included (0 is "not a state": junk in the stored columns). */
export const STATE_CODES = {
  PENDING: 1,
  ACTIVE: 2,
  GRACE: 3,
  SUSPENDED: 4,
  "LOCKED:OFFLINE": 5,
  "LOCKED:EXPIRED": 6,
  "LOCKED:REVOKED": 7,
} as const;

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
  return STATE_CODES[(s.lockReason ? `${s.state}:${s.lockReason}` : s.state) as keyof typeof STATE_CODES];
}

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
  return (
    `case when ${c("lock_reason")} is null then ` +
    `(case ${c("state")} when 'PENDING' then 1 when 'ACTIVE' then 2 when 'GRACE' then 3 when 'SUSPENDED' then 4 else 0 end) ` +
    `when ${c("state")} = 'LOCKED' then (case ${c("lock_reason")} when 'OFFLINE' then 5 when 'EXPIRED' then 6 when 'REVOKED' then 7 else 0 end) ` +
    `else 0 end`
  );
}

/**
 * The derived state's code at `at`: the same checks in the same order as `deriveState`
 * (revoked, no licence, term ended, unbound, silent past the grace window, subscription invalid,
 * silent past the timeout, active), the same strict boundaries, last seen falling back to the
 * activation time. The cut-offs are computed once here, so each row compares timestamps only.
 */
export function derivedCodeSql(alias: string, at: Date, settings: Settings, pg: boolean): SqlExpr {
  const c = (name: string) => `${alias}.${name}`;
  // MikroORM keeps SQLite datetimes as epoch milliseconds; PostgreSQL compares timestamptz.
  const t = (ms: number): unknown => (pg ? new Date(ms) : ms);
  const ts = pg ? "cast(? as timestamptz)" : "?";
  const now = at.getTime();
  const seen = `coalesce(${c("last_seen_at")}, ${c("activated_at")})`;
  return {
    sql:
      `case when ${c("license_revoked_at")} is not null then 7 ` +
      `when ${c("license_expires_at")} is null then 1 ` +
      // now >= expires_at
      `when ${c("license_expires_at")} <= ${ts} then 6 ` +
      `when ${c("activated_at")} is null or ${c("fingerprint_hash")} is null then 1 ` +
      // now - seen > grace_window  ⇔  seen < now - grace_window
      `when ${seen} < ${ts} then 5 ` +
      `when ${c("subscription_status")} = 'INVALID' then 4 ` +
      `when ${seen} < ${ts} then 3 ` +
      `else 2 end`,
    params: [t(now), t(now - settings.graceWindowMs), t(now - settings.heartbeatTimeoutMs)],
  };
}

/**
 * True (never NULL) only for a row stored ACTIVE that still derives ACTIVE at `at`: licence not
 * revoked, term not ended, bound, subscription not INVALID, and seen within `heartbeat_timeout` —
 * most of a healthy fleet. Each test is a comparison on one column, so a page skips such a row
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
      // seen within the timeout, hence within the grace window (both of derivedCodeSql's `seen < …` false)
      `and ${c("last_seen_at")} is not null and ${c("last_seen_at")} >= ${ts} ` +
      `and ${c("license_revoked_at")} is null ` +
      `and ${c("license_expires_at")} is not null and ${c("license_expires_at")} > ${ts} ` +
      `and ${c("activated_at")} is not null and ${c("fingerprint_hash")} is not null ` +
      `and ${c("subscription_status")} <> 'INVALID')`,
    // Settings keep heartbeat_timeout below grace_window; the nearer cut-off holds either way.
    params: [t(now - Math.min(settings.heartbeatTimeoutMs, settings.graceWindowMs)), t(now)],
  };
}
