/**
 * The box's signing keys (the JWKS it verifies leases with) and what a new set means for the lease
 * it runs on. A key revoked in the control plane is dropped from the JWKS it sends (REFRESH_KEYS,
 * pushed to connected boxes when the set changes, and at connect when the box's key ids — sent in
 * every hello — differ). A lease signed by a key no longer in the set is no longer believed: the
 * box runs without a lease (LOCKED, NO_LEASE) until the control plane gives it a fresh one, which
 * it asks for at once by reconnecting with `last_lease_seq` 0 (the server then signs one).
 */
import { decodeProtectedHeader, type JSONWebKeySet } from "jose";

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

/** Whether `token`'s header names a key of `jwks`; false for anything unreadable. */
export function signedByKeyOf(token: string, jwks: JSONWebKeySet): boolean {
  try {
    const kid = decodeProtectedHeader(token).kid;
    return typeof kid === "string" && keyIdsOf(jwks).includes(kid);
  } catch {
    return false;
  }
}

/** What adopting a new key set means for the box. */
export type KeySetChange =
  /** The same key ids: nothing to do. */
  | { readonly kind: "unchanged" }
  /** Adopt the set; `leaseTrusted` false: the current lease's key is gone, so drop it and ask for a fresh one. */
  | { readonly kind: "changed"; readonly leaseTrusted: boolean };

/** Decides what a REFRESH_KEYS with `next` means for a box holding `current` and `leaseToken`. */
export function keySetChange(current: JSONWebKeySet, next: JSONWebKeySet, leaseToken: string): KeySetChange {
  if (sameKeyIds(current, next)) return { kind: "unchanged" };
  return { kind: "changed", leaseTrusted: signedByKeyOf(leaseToken, next) };
}
