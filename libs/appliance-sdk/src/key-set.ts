/**
 * The box's signing keys (the JWKS it verifies leases with) and what a new set means for the lease
 * it runs on. A key revoked in the control plane is dropped from the JWKS it sends (REFRESH_KEYS,
 * pushed to connected boxes when the set changes, and at connect when the box's key ids — sent in
 * every hello — differ).
 *
 * A lease signed by a key no longer in the set is REPLACED, not dropped on the spot: a routine
 * revocation after a rotation would otherwise show every healthy box of the fleet as LOCKED for a
 * round trip, and a host that stops its device on LOCKED would stop patient care everywhere at
 * once. The box keeps its state on that lease for a bounded window (`leaseReplacementMs`, default
 * {@link DEFAULT_LEASE_REPLACEMENT_MS}) while it asks for a fresh one (it reconnects saying it
 * holds none, `last_lease_seq` 0, so the server signs one). A fresh lease ends the window; at its
 * deadline with none, the old lease is dropped (LOCKED, NO_LEASE). So the revoked key is believed
 * for at most the window after the box learns of the revocation, and no longer at all for any new
 * lease: a lease it signs is refused like any other from an unknown key.
 *
 * The window is stored with the lease (its deadline on the box's clock, and the retired public key
 * so the stored lease still verifies): a restart inside the window resumes it with the same
 * deadline — restarting never extends the trust, and never locks a box the revocation did not.
 */
import { decodeProtectedHeader, type JSONWebKeySet, type JWK } from "jose";

/**
 * The default replacement window: two default heartbeat intervals. It covers the immediate
 * reconnect and the backed-off retries of a brief outage (1 + 2 + 4 + 8 + 16 + 32 s), each with
 * its round trip, while keeping a revoked key's life on the box to minutes.
 */
export const DEFAULT_LEASE_REPLACEMENT_MS = 120_000;

/** A lease whose signing key left the key set, run on until `deadline` while a fresh one is asked for. */
export interface LeaseReplacement {
  /** The box's clock (epoch ms) at which, with no fresh lease, the lease is dropped. */
  deadline: number;
  /** The retired public key that signed the lease, kept only so the stored lease verifies after a restart. */
  key: JWK;
}

/** The part of the state file a key-set change touches. */
export interface KeyHolder {
  jwks: JSONWebKeySet;
  leaseToken: string;
  leaseReplacement?: LeaseReplacement;
}

/** The key ids of a JWKS, as the hello reports them. */
export function keyIdsOf(jwks: JSONWebKeySet): string[] {
  return jwks.keys.map((k) => k.kid).filter((kid): kid is string => typeof kid === "string");
}

/** Whether two key sets hold the same key ids. */
export function sameKeyIds(a: JSONWebKeySet, b: JSONWebKeySet): boolean {
  const left = new Set(keyIdsOf(a));
  const right = new Set(keyIdsOf(b));
  return left.size === right.size && [...left].every((kid) => right.has(kid));
}

/** The key of `jwks` that `token`'s header names, if any; undefined for anything unreadable. */
function keyOf(token: string, jwks: JSONWebKeySet): JWK | undefined {
  try {
    const kid = decodeProtectedHeader(token).kid;
    return typeof kid === "string" ? jwks.keys.find((k) => k.kid === kid) : undefined;
  } catch {
    return undefined;
  }
}

/** Whether `token`'s header names a key of `jwks`; false for anything unreadable. */
export function signedByKeyOf(token: string, jwks: JSONWebKeySet): boolean {
  return keyOf(token, jwks) !== undefined;
}

/** What adopting a key set did. */
export type KeyAdoption =
  /** The same key ids: nothing to do. */
  | "unchanged"
  /** Adopted; the lease (if any) is still signed by a key of the set, or was already being replaced. */
  | "adopted"
  /** Adopted, and the lease's key is gone: its replacement window starts now; ask for a fresh lease. */
  | "replacing";

/**
 * Adopts `next` into `held` (REFRESH_KEYS). `holdsLease`: the box runs on its lease now (a lease
 * already dropped has nothing to replace). A window already open keeps its deadline, so repeated
 * key changes never stretch it; a set that holds the lease's key again closes it.
 */
export function adoptKeySet(held: KeyHolder, next: JSONWebKeySet, holdsLease: boolean, now: number, windowMs: number): KeyAdoption {
  if (sameKeyIds(held.jwks, next)) return "unchanged";
  const retired = keyOf(held.leaseToken, held.jwks);
  held.jwks = next;
  if (signedByKeyOf(held.leaseToken, next)) {
    delete held.leaseReplacement;
    return "adopted";
  }
  if (!holdsLease || held.leaseReplacement || !retired) return "adopted";
  held.leaseReplacement = { deadline: now + windowMs, key: retired };
  return "replacing";
}

/**
 * The keys the stored lease is verified with on load: the set, plus the retired key while its
 * replacement window is open (after it, the lease no longer verifies and loads as dropped).
 */
export function storedLeaseKeys(held: KeyHolder): JSONWebKeySet {
  return held.leaseReplacement ? { keys: [...held.jwks.keys, held.leaseReplacement.key] } : held.jwks;
}

/** Whether the replacement window of `held` is open and its deadline has come. */
export function replacementExpired(held: KeyHolder, now: number): boolean {
  return held.leaseReplacement !== undefined && now >= held.leaseReplacement.deadline;
}

/** A REFRESH_KEYS or Activate JWKS, or null when it is not one. */
export function parseJwks(json: string): JSONWebKeySet | null {
  try {
    const value: unknown = JSON.parse(json);
    if (typeof value === "object" && value !== null && Array.isArray((value as { keys?: unknown }).keys)) {
      return value as JSONWebKeySet;
    }
  } catch {
    /* fall through */
  }
  return null;
}
