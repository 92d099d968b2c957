/**
 * The console's tables: browser sessions and sign-ins under way, shared by every replica so a
 * load balancer may send any request to any of them. Keys are hashes of the cookie ids and the
 * payloads are sealed (../sealing.ts); only the times needed to expire, evict and sweep rows are
 * stored in the clear. Times are milliseconds since the epoch, as the console's clock gives them.
 */
import { defineEntity, p, type InferEntity } from "@mikro-orm/core";

/** One signed-in browser. */
export const ConsoleSessionEntity = defineEntity({
  name: "ConsoleSession",
  tableName: "console_session",
  properties: {
    /** SHA-256 (hex) of the session cookie's value. */
    idHash: p.string().length(64).primary(),
    /** Sealed JSON: subject, name, roles, CSRF token, access and refresh tokens, access token expiry. */
    sealed: p.text(),
    createdAt: p.bigint("number"),
    /** Written at most once per touch interval (sessions.ts), not on every request. */
    lastUsedAt: p.bigint("number").index(),
    /** Idle deadline capped by the maximum age: the sweep deletes rows past it. */
    expiresAt: p.bigint("number").index(),
    /** While in the future, one replica is refreshing this session's tokens and the others wait for it. */
    refreshingUntil: p.bigint("number").nullable(),
  },
});

/** A session row as the ORM hydrates it. */
export type ConsoleSessionRow = InferEntity<typeof ConsoleSessionEntity>;

/** One sign-in between `/auth/login` and `/auth/callback`. */
export const PendingLoginEntity = defineEntity({
  name: "PendingLogin",
  tableName: "console_pending_login",
  properties: {
    /** SHA-256 (hex) of the login cookie's value. */
    idHash: p.string().length(64).primary(),
    /** Sealed JSON: state, nonce, PKCE verifier, return path. */
    sealed: p.text(),
    createdAt: p.bigint("number").index(),
    expiresAt: p.bigint("number").index(),
  },
});

/** A pending sign-in row as the ORM hydrates it. */
export type PendingLoginRow = InferEntity<typeof PendingLoginEntity>;
