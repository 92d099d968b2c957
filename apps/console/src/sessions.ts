/**
 * Browser sessions: who signed in and their tokens, kept server-side behind an opaque id (the
 * HttpOnly session cookie). A session ends when idle for `SESSION_IDLE_TIMEOUT`, at
 * `SESSION_MAX_AGE`, on sign-out, or when its access token can no longer be refreshed.
 *
 * Storage sits behind {@link SessionStore}: the in-memory one here serves one replica; replicas
 * behind a load balancer need a shared store implementing the same interface (or sticky sessions).
 */
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import type { Refreshed, SignedIn } from "./oidc.js";

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

/**
 * Where sessions live. Implementations bound what they hold; `expiresAt` on each session tells a
 * store with native expiry (a shared cache) when to drop it.
 */
export interface SessionStore {
  /** The session with this id, whether or not it has expired (the caller checks). */
  get(id: string): Promise<Session | undefined>;
  /** Creates or replaces a session; it becomes the most recently used. */
  put(session: Session): Promise<void>;
  delete(id: string): Promise<void>;
  /** Deletes every session whose `expiresAt` is at or before `now`; returns how many. */
  deleteExpired(now: number): Promise<number>;
  /** How many sessions are held. */
  size(): Promise<number>;
}

/**
 * The in-memory store: at most `maxSessions`, the least recently used evicted to admit a new
 * one. A Map keeps insertion order, and `put` re-inserts, so the first key is always the least
 * recently used.
 */
export function createMemorySessionStore(options: { readonly maxSessions: number; readonly onEvict?: (session: Session) => void }): SessionStore {
  const sessions = new Map<string, Session>();
  return {
    get: async (id) => sessions.get(id),
    async put(session) {
      sessions.delete(session.id);
      sessions.set(session.id, session);
      while (sessions.size > options.maxSessions) {
        const oldest = sessions.keys().next().value as string;
        const evicted = sessions.get(oldest)!;
        sessions.delete(oldest);
        options.onEvict?.(evicted);
      }
    },
    delete: async (id) => void sessions.delete(id),
    async deleteExpired(now) {
      let count = 0;
      for (const [id, session] of sessions) {
        if (session.expiresAt <= now) {
          sessions.delete(id);
          count++;
        }
      }
      return count;
    },
    size: async () => sessions.size,
  };
}

/** A refresh is due when the access token expires within this. */
export const REFRESH_MARGIN_MS = 30_000;
/** How often expired sessions are swept from the store. */
export const SWEEP_INTERVAL_MS = 60_000;

const SESSION_ID = /^[A-Za-z0-9_-]{43}$/;

/** Sessions with their timing rules and token refresh. */
export interface Sessions {
  /** Creates a session for a sign-in. */
  create(signedIn: SignedIn): Promise<Session>;
  /** The session with this cookie value if it is live; an expired one is deleted. Does not extend it. */
  live(id: string | undefined): Promise<Session | undefined>;
  /** Marks the session used now (extends its idle deadline). */
  touch(session: Session): Promise<Session>;
  /**
   * The session with an access token valid for at least {@link REFRESH_MARGIN_MS}, refreshing it
   * when needed (one refresh at a time per session; concurrent callers share it). Undefined when
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
}

/** Creates the session rules over a store and starts sweeping it. */
export function createSessions(options: SessionsOptions): Sessions {
  const { store, now, log } = options;
  const refreshing = new Map<string, Promise<Session | undefined>>();
  const deadline = (createdAt: number, lastUsedAt: number) => Math.min(lastUsedAt + options.idleTimeoutMs, createdAt + options.maxAgeMs);

  const sweep = setInterval(() => {
    store.deleteExpired(now()).then(
      (count) => count > 0 && log.debug({ count }, "expired sessions swept"),
      (err: unknown) => log.error({ err: errorFields(err) }, "session sweep failed"),
    );
  }, SWEEP_INTERVAL_MS);
  sweep.unref();

  const refresh = async (session: Session): Promise<Session | undefined> => {
    if (!session.refreshToken) {
      log.info({ subject: session.subject }, "session ended: access token expiring and no refresh token");
      await store.delete(session.id);
      return undefined;
    }
    try {
      const tokens = await options.refresh(session.refreshToken);
      // Still there? A sign-out while the refresh ran must win.
      const current = await store.get(session.id);
      if (!current) return undefined;
      const updated: Session = { ...current, ...tokens };
      await store.put(updated);
      return updated;
    } catch (err) {
      log.info({ subject: session.subject, err: errorFields(err) }, "session ended: token refresh refused");
      await store.delete(session.id);
      return undefined;
    }
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
      await store.put(session);
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
      const touched: Session = { ...session, lastUsedAt: at, expiresAt: deadline(session.createdAt, at) };
      await store.put(touched);
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
