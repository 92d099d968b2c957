/**
 * Browser sessions: who signed in and their tokens, kept server-side behind an opaque id (the
 * HttpOnly session cookie). A session ends when idle for `SESSION_IDLE_TIMEOUT`, at
 * `SESSION_MAX_AGE`, on sign-out, or when its access token can no longer be refreshed.
 *
 * The rows live in the console's database (session-store.ts), shared by every replica, so a load
 * balancer needs no sticky sessions: a session made on one replica is live, refreshed and ended
 * on any other.
 */
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import type { Refreshed, SignedIn } from "./oidc.js";
import type { SessionStore } from "./session-store.js";

/** One signed-in browser. Never sent to the browser as a whole: tokens stay here. */
export interface Session {
  /** 32 random bytes, base64url: the session cookie's value. */
  readonly id: string;
  readonly subject: string;
  readonly name: string;
  readonly roles: readonly string[];
  /** Sent back in `x-csrf-token` on every state-changing request. */
  readonly csrfToken: string;
  readonly accessToken: string;
  /** Milliseconds since the epoch. */
  readonly accessTokenExpiresAt: number;
  readonly refreshToken?: string | undefined;
  readonly createdAt: number;
  readonly lastUsedAt: number;
  /** When the session ends unless used again: idle deadline, capped by the maximum age. */
  readonly expiresAt: number;
}

/** A refresh is due when the access token expires within this. */
export const REFRESH_MARGIN_MS = 30_000;
/** How often expired sessions are swept from the store. */
export const SWEEP_INTERVAL_MS = 60_000;
/**
 * Use is written to the store at most this often per session (and at most every quarter of the
 * idle timeout), not on every request: a session's idle deadline may then fall up to this much
 * early, which no one notices, while a busy screen no longer costs a write per call.
 */
export const TOUCH_INTERVAL_MS = 60_000;
/**
 * How long one replica may hold a session's refresh before another may try: the issuer's token
 * endpoint answers within its 10 s timeout, or not at all.
 */
export const REFRESH_CLAIM_MS = 15_000;
/** How often a replica waiting for another's refresh looks at the row again. */
const REFRESH_POLL_MS = 100;

const SESSION_ID = /^[A-Za-z0-9_-]{43}$/;

/** Sessions with their timing rules and token refresh. */
export interface Sessions {
  /** Creates a session for a sign-in. */
  create(signedIn: SignedIn): Promise<Session>;
  /** The session with this cookie value if it is live; an expired one is deleted. Does not extend it. */
  live(id: string | undefined): Promise<Session | undefined>;
  /** Marks the session used now (extends its idle deadline); stored at most once per touch interval. */
  touch(session: Session): Promise<Session>;
  /**
   * The session with an access token valid for at least {@link REFRESH_MARGIN_MS}, refreshing it
   * when needed (one refresh per session among all replicas; concurrent callers share it). Undefined when
   * it cannot be refreshed: the session has then been ended.
   */
  withFreshTokens(session: Session): Promise<Session | undefined>;
  /** Ends a session. */
  end(id: string): Promise<void>;
  /** Stops the periodic sweep. */
  close(): void;
}

/** Options of {@link createSessions}. */
export interface SessionsOptions {
  readonly store: SessionStore;
  readonly idleTimeoutMs: number;
  readonly maxAgeMs: number;
  readonly now: () => number;
  /** Exchanges a refresh token; throws when the issuer refuses. */
  readonly refresh: (refreshToken: string) => Promise<Refreshed>;
  readonly log: Logger;
  /** Also swept with the sessions (expired sign-ins). */
  readonly alsoSweep?: (now: number) => Promise<number>;
}

/** Creates the session rules over a store and starts sweeping it. */
export function createSessions(options: SessionsOptions): Sessions {
  const { store, now, log } = options;
  const refreshing = new Map<string, Promise<Session | undefined>>();
  const deadline = (createdAt: number, lastUsedAt: number) => Math.min(lastUsedAt + options.idleTimeoutMs, createdAt + options.maxAgeMs);

  const touchIntervalMs = Math.min(TOUCH_INTERVAL_MS, Math.floor(options.idleTimeoutMs / 4));
  const sweepOnce = async () => {
    const at = now();
    return (await store.deleteExpired(at)) + ((await options.alsoSweep?.(at)) ?? 0);
  };
  const sweep = setInterval(() => {
    sweepOnce().then(
      (count) => count > 0 && log.debug({ count }, "expired sessions and sign-ins swept"),
      (err: unknown) => log.error({ err: errorFields(err) }, "session sweep failed"),
    );
  }, SWEEP_INTERVAL_MS);
  sweep.unref();

  const end = async (session: Session, why: string, err?: unknown): Promise<undefined> => {
    log.info({ subject: session.subject, ...(err === undefined ? {} : { err: errorFields(err) }) }, `session ended: ${why}`);
    await store.delete(session.id);
    return undefined;
  };

  const refresh = async (session: Session, retried = false): Promise<Session | undefined> => {
    if (!session.refreshToken) return end(session, "access token expiring and no refresh token");
    // Replicas share the session, and an issuer that rotates refresh tokens treats a second use
    // of one as theft: exactly one replica refreshes, the others wait for its result.
    if (!(await store.claimRefresh(session.id, now(), now() + REFRESH_CLAIM_MS))) {
      const waited = await refreshedElsewhere(session);
      // The claimant died before storing anything: its claim has run out, so try once more.
      return waited === "timed out" ? (retried ? undefined : refresh(session, true)) : waited;
    }
    let tokens: Refreshed;
    try {
      tokens = await options.refresh(session.refreshToken);
    } catch (err) {
      return end(session, "token refresh refused", err);
    }
    const updated: Session = { ...session, ...tokens };
    // Gone meanwhile? A sign-out while the refresh ran must win.
    return (await store.replaceTokens(updated)) ? updated : undefined;
  };

  /** Another replica holds the refresh: its tokens, once stored; the current ones while they still work. */
  const refreshedElsewhere = async (session: Session): Promise<Session | undefined | "timed out"> => {
    if (session.accessTokenExpiresAt > now()) return session;
    const giveUpAt = now() + REFRESH_CLAIM_MS;
    while (now() <= giveUpAt) {
      await new Promise((resolve) => setTimeout(resolve, REFRESH_POLL_MS));
      const current = await store.get(session.id);
      if (!current) return undefined;
      if (current.accessTokenExpiresAt > now()) return current;
    }
    return "timed out";
  };

  return {
    async create(signedIn) {
      const at = now();
      const session: Session = {
        id: randomBytes(32).toString("base64url"),
        csrfToken: randomBytes(32).toString("base64url"),
        subject: signedIn.subject,
        name: signedIn.name,
        roles: signedIn.roles,
        accessToken: signedIn.accessToken,
        accessTokenExpiresAt: signedIn.accessTokenExpiresAt,
        refreshToken: signedIn.refreshToken,
        createdAt: at,
        lastUsedAt: at,
        expiresAt: deadline(at, at),
      };
      await store.create(session);
      return session;
    },

    async live(id) {
      if (id === undefined || !SESSION_ID.test(id)) return undefined;
      const session = await store.get(id);
      if (!session) return undefined;
      if (session.expiresAt <= now()) {
        await store.delete(id);
        return undefined;
      }
      return session;
    },

    async touch(session) {
      const at = now();
      if (at - session.lastUsedAt < touchIntervalMs) return session;
      const touched: Session = { ...session, lastUsedAt: at, expiresAt: deadline(session.createdAt, at) };
      await store.touch(touched);
      return touched;
    },

    async withFreshTokens(session) {
      if (session.accessTokenExpiresAt - now() > REFRESH_MARGIN_MS) return session;
      let pending = refreshing.get(session.id);
      if (!pending) {
        pending = refresh(session).finally(() => refreshing.delete(session.id));
        refreshing.set(session.id, pending);
      }
      return pending;
    },

    end: (id) => store.delete(id),
    close: () => clearInterval(sweep),
  };
}

/**
 * An error as it may be logged: name, code and message only. Errors from the token endpoint can
 * carry the response or request they came from; nothing of that belongs in a log line.
 */
export function errorFields(err: unknown): { name: string; code?: string; message: string } {
  if (!(err instanceof Error)) return { name: "Error", message: String(err).slice(0, 300) };
  const code = (err as { code?: unknown }).code;
  return { name: err.name, ...(typeof code === "string" ? { code } : {}), message: err.message.slice(0, 300) };
}
