/**
 * Sign-ins under way: between `/auth/login` sending the browser to the issuer and
 * `/auth/callback` bringing it back, the PKCE verifier, state, nonce and return path wait here,
 * keyed by a random id in a short-lived cookie. Bounded in number and age, single use.
 */
import { randomBytes } from "node:crypto";
import type { PendingSignIn } from "./oidc.js";

/** One sign-in under way. */
export interface PendingLogin extends PendingSignIn {
  /** Where the browser goes once signed in: a path under /licensing. */
  readonly returnTo: string;
  readonly expiresAt: number;
}

/** The pending sign-ins. */
export interface PendingLogins {
  /** Keeps a sign-in; returns the id for its cookie. The oldest is dropped beyond the bound. */
  add(login: Omit<PendingLogin, "expiresAt">): string;
  /** Takes (and forgets) the sign-in with this id, if it exists and has not expired. */
  take(id: string | undefined): PendingLogin | undefined;
}

/** How many sign-ins may be under way at once, and for how long each is kept. */
export const MAX_PENDING_LOGINS = 1_000;
export const PENDING_LOGIN_TTL_MS = 10 * 60_000;

const LOGIN_ID = /^[A-Za-z0-9_-]{43}$/;

/** Creates the bounded, in-memory pending sign-ins. */
export function createPendingLogins(options: { readonly now: () => number; readonly max?: number; readonly ttlMs?: number }): PendingLogins {
  const max = options.max ?? MAX_PENDING_LOGINS;
  const ttl = options.ttlMs ?? PENDING_LOGIN_TTL_MS;
  const logins = new Map<string, PendingLogin>();
  return {
    add(login) {
      const at = options.now();
      // Expired ones first (they are the oldest: insertion order is time order), then the oldest live one.
      for (const [id, pending] of logins) {
        if (pending.expiresAt > at && logins.size < max) break;
        logins.delete(id);
      }
      const id = randomBytes(32).toString("base64url");
      logins.set(id, { ...login, expiresAt: at + ttl });
      return id;
    },
    take(id) {
      if (id === undefined || !LOGIN_ID.test(id)) return undefined;
      const login = logins.get(id);
      if (!login) return undefined;
      logins.delete(id);
      return login.expiresAt > options.now() ? login : undefined;
    },
  };
}
