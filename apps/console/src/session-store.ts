/**
 * Where sessions live: the console's database, shared by every replica (storage/entities.ts).
 * Rows are keyed by the hash of the session id and their payload is sealed (sealing.ts); a row
 * that does not open under this replica's `SESSION_KEY` reads as no session, so a replica with a
 * wrong key signs its browsers out instead of failing, and does not delete what others can read.
 */
import type { Database } from "@lcp/persistence";
import type { Logger } from "pino";
import type { Sealer } from "./sealing.js";
import type { Session } from "./sessions.js";
import { ConsoleSessionEntity } from "./storage/entities.js";

/** The part of a session that is sealed (everything but the id and the times). */
type SealedSession = Pick<Session, "subject" | "name" | "roles" | "csrfToken" | "accessToken" | "accessTokenExpiresAt" | "refreshToken">;

/** The session rows, as the session rules use them. */
export interface SessionStore {
  /** The session with this id, whether or not it has expired (the caller checks); undefined when absent or unreadable. */
  get(id: string): Promise<Session | undefined>;
  /** Stores a new session, then evicts the least recently used beyond `maxSessions`. */
  create(session: Session): Promise<void>;
  /** Records use: new `lastUsedAt` and `expiresAt`. False when the session is gone. */
  touch(session: Session): Promise<boolean>;
  /** Stores refreshed tokens and releases the refresh claim. False when the session is gone. */
  replaceTokens(session: Session): Promise<boolean>;
  /**
   * Claims the right to refresh this session's tokens until `until` (ms): true for exactly one
   * caller among the replicas while no other claim is running (`now` is before its end).
   */
  claimRefresh(id: string, now: number, until: number): Promise<boolean>;
  delete(id: string): Promise<void>;
  /** Deletes every session whose `expiresAt` is at or before `now`; returns how many. */
  deleteExpired(now: number): Promise<number>;
}

/** Options of {@link createDatabaseSessionStore}. */
export interface DatabaseSessionStoreOptions {
  readonly db: Database;
  readonly sealer: Sealer;
  readonly maxSessions: number;
  readonly log: Logger;
}

/** The database-backed store. */
export function createDatabaseSessionStore(options: DatabaseSessionStoreOptions): SessionStore {
  const { db, sealer, maxSessions, log } = options;
  const sealedPart = (s: Session): SealedSession => ({
    subject: s.subject,
    name: s.name,
    roles: s.roles,
    csrfToken: s.csrfToken,
    accessToken: s.accessToken,
    accessTokenExpiresAt: s.accessTokenExpiresAt,
    refreshToken: s.refreshToken,
  });

  return {
    async get(id) {
      const row = await db.em().findOne(ConsoleSessionEntity, { idHash: sealer.rowKey(id) });
      if (!row) return undefined;
      const opened = sealer.open(id, row.sealed);
      if (!isSealedSession(opened)) {
        // Not deleted: a replica with the wrong SESSION_KEY must not end the sessions its peers can read.
        log.warn("a session row did not open with this SESSION_KEY: treated as signed out (are the replicas' keys the same?)");
        return undefined;
      }
      return { id, ...opened, createdAt: row.createdAt, lastUsedAt: row.lastUsedAt, expiresAt: row.expiresAt };
    },

    async create(session) {
      const em = db.em();
      em.create(ConsoleSessionEntity, {
        idHash: sealer.rowKey(session.id),
        sealed: sealer.seal(session.id, sealedPart(session)),
        createdAt: session.createdAt,
        lastUsedAt: session.lastUsedAt,
        expiresAt: session.expiresAt,
        refreshingUntil: null,
      });
      await em.flush();
      // Replicas creating at once may each evict; the bound holds once they have all run.
      const excess = (await em.count(ConsoleSessionEntity, {})) - maxSessions;
      if (excess > 0) {
        const oldest = await em.find(ConsoleSessionEntity, {}, { fields: ["idHash"], orderBy: { lastUsedAt: "asc", idHash: "asc" }, limit: excess });
        const evicted = await em.nativeDelete(ConsoleSessionEntity, { idHash: { $in: oldest.map((row) => row.idHash) } });
        log.info({ evicted, maxSessions }, "least recently used sessions evicted (MAX_SESSIONS)");
      }
    },

    async touch(session) {
      const changed = await db
        .em()
        .nativeUpdate(ConsoleSessionEntity, { idHash: sealer.rowKey(session.id) }, { lastUsedAt: session.lastUsedAt, expiresAt: session.expiresAt });
      return changed > 0;
    },

    async replaceTokens(session) {
      const changed = await db
        .em()
        .nativeUpdate(ConsoleSessionEntity, { idHash: sealer.rowKey(session.id) }, { sealed: sealer.seal(session.id, sealedPart(session)), refreshingUntil: null });
      return changed > 0;
    },

    async claimRefresh(id, now, until) {
      // One conditional update: of the replicas racing for it, the database lets exactly one match.
      const claimed = await db
        .em()
        .nativeUpdate(ConsoleSessionEntity, { idHash: sealer.rowKey(id), $or: [{ refreshingUntil: null }, { refreshingUntil: { $lte: now } }] }, { refreshingUntil: until });
      return claimed > 0;
    },

    async delete(id) {
      await db.em().nativeDelete(ConsoleSessionEntity, { idHash: sealer.rowKey(id) });
    },

    deleteExpired: (now) => db.em().nativeDelete(ConsoleSessionEntity, { expiresAt: { $lte: now } }),
  };
}

function isSealedSession(value: unknown): value is SealedSession {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.subject === "string" &&
    typeof v.name === "string" &&
    Array.isArray(v.roles) &&
    v.roles.every((r) => typeof r === "string") &&
    typeof v.csrfToken === "string" &&
    typeof v.accessToken === "string" &&
    typeof v.accessTokenExpiresAt === "number" &&
    (v.refreshToken === undefined || typeof v.refreshToken === "string")
  );
}
