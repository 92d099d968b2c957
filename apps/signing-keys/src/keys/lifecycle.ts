/**
 * The signing-key lifecycle as pure rules (docs/design.md §6): NEXT (published, not signing) →
 * ACTIVE (exactly one signs) → RETIRED (still verifies); any → REVOKED (removed from the JWKS).
 *
 * No I/O and no time source here: the storage layer loads the keys, asks these functions what
 * to do, and applies the answer inside one locked transaction.
 */

/** A key's lifecycle state, as stored. */
export type KeyLifecycleState = "NEXT" | "ACTIVE" | "RETIRED" | "REVOKED";

/** Every state, in lifecycle order. */
export const KEY_LIFECYCLE_STATES: readonly KeyLifecycleState[] = ["NEXT", "ACTIVE", "RETIRED", "REVOKED"];

/** What the rules need to know about a key. */
export interface KeyStatus {
  kid: string;
  state: KeyLifecycleState;
  createdAt: Date;
}

/**
 * The domain code of a refused key change (FailedPrecondition in libs/rpc/src/errors.ts); the
 * key's state goes along as ErrorInfo metadata so a client can tell the cases apart.
 */
export type KeyRefusalCode = "KEY_STATE";

/** A verdict on a requested key change: refused with a code, or allowed (possibly a no-op). */
export type KeyChangeVerdict =
  | { ok: true; changed: boolean; wasActive: boolean }
  | { ok: false; code: KeyRefusalCode; state: KeyLifecycleState; message: string };

/** Whether verifiers may use a key: everything but REVOKED is in the JWKS. */
export function isPublished(state: KeyLifecycleState): boolean {
  return state !== "REVOKED";
}

/** Whether a key may sign. Only ACTIVE does. */
export function canSign(state: KeyLifecycleState): boolean {
  return state === "ACTIVE";
}

/**
 * What a rotation does, given the current keys:
 * - `activate`: the NEXT key that becomes ACTIVE (the oldest one, because it has been published
 *   longest and verifiers are most likely to have it cached), or `null` when there is no NEXT key
 *   and one must be created first;
 * - `retire`: every key currently ACTIVE (normally one; more only if a bug or a hand edit broke
 *   the invariant, and a rotation is the place to heal it);
 * - a fresh NEXT key is always published afterwards, so the following rotation never activates a
 *   key verifiers have not seen.
 */
export interface RotationPlan {
  activate: string | null;
  retire: string[];
}

/** Plans a rotation (see {@link RotationPlan}). */
export function planRotation(keys: readonly KeyStatus[]): RotationPlan {
  const next = keys
    .filter((k) => k.state === "NEXT")
    .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || a.kid.localeCompare(b.kid));
  return {
    activate: next[0]?.kid ?? null,
    retire: keys.filter((k) => k.state === "ACTIVE").map((k) => k.kid),
  };
}

/**
 * May this key be retired?
 * - RETIRED: already; a no-op, so a retried call succeeds without a second audit event.
 * - REVOKED: refused — revocation is final, and retiring would put it back in the JWKS.
 * - ACTIVE: refused — retiring the signing key without a successor would stop all signing for
 *   no security reason; RotateKeys retires it and activates the successor in one step (and
 *   RevokeKey exists for a compromised key).
 * - NEXT: allowed (it never signed, and stays verifiable like any retired key).
 */
export function retireVerdict(state: KeyLifecycleState): KeyChangeVerdict {
  switch (state) {
    case "RETIRED":
      return { ok: true, changed: false, wasActive: false };
    case "REVOKED":
      return { ok: false, code: "KEY_STATE", state, message: "the key is revoked; a revoked key cannot be retired" };
    case "ACTIVE":
      return {
        ok: false,
        code: "KEY_STATE",
        state,
        message: "the key is ACTIVE; use RotateKeys to retire it with a successor, or RevokeKey if it is compromised",
      };
    case "NEXT":
      return { ok: true, changed: true, wasActive: false };
  }
}

/**
 * May this key be revoked? Always — revocation is the answer to a compromised key, and refusing
 * it would keep a compromised key trusted. REVOKED again is a no-op.
 *
 * Revoking the ACTIVE key deliberately leaves no signing key: Sign answers FailedPrecondition
 * (NO_ACTIVE_KEY) until an operator runs RotateKeys. Silently promoting another key would hide
 * the incident from the operator and from the licensing service.
 */
export function revokeVerdict(state: KeyLifecycleState): KeyChangeVerdict {
  if (state === "REVOKED") return { ok: true, changed: false, wasActive: false };
  return { ok: true, changed: true, wasActive: state === "ACTIVE" };
}

/**
 * Whether first start should create the initial keys: only on a database that has never held a
 * key. A database whose keys were all revoked stays without an ACTIVE key until an operator
 * rotates — a restart must not undo a revocation's effect.
 */
export function needsInitialKeys(keyCount: number): boolean {
  return keyCount === 0;
}

/**
 * The order of keys in the JWKS: ACTIVE first (what verifiers need most), then NEXT, then
 * RETIRED, newest first within a state; REVOKED keys are left out.
 */
export function jwksOrder<K extends KeyStatus>(keys: readonly K[]): K[] {
  const rank: Record<KeyLifecycleState, number> = { ACTIVE: 0, NEXT: 1, RETIRED: 2, REVOKED: 3 };
  return keys
    .filter((k) => isPublished(k.state))
    .sort((a, b) => rank[a.state] - rank[b.state] || b.createdAt.getTime() - a.createdAt.getTime() || b.kid.localeCompare(a.kid));
}
