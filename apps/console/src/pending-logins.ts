/**
 * Sign-ins under way: between `/auth/login` sending the browser to the issuer and
 * `/auth/callback` bringing it back, the PKCE verifier, state, nonce and return path wait in the
 * console's database (sealed, keyed by the hash of a random id in a short-lived cookie), so the
 * callback may land on any replica. Bounded in number and age, and single use: taking one deletes
 * its row, and of two callbacks racing for it (on one replica or two) only the one whose delete
 * removed the row goes on.
 */
import { randomBytes } from "node:crypto";
import type { Database } from "@lcp/persistence";
import type { PendingSignIn } from "./oidc.js";
import type { Sealer } from "./sealing.js";
import { PendingLoginEntity } from "./storage/entities.js";

/** One sign-in under way. */
export interface PendingLogin extends PendingSignIn {
  /** Where the browser goes once signed in: a path under /licensing. */
  readonly returnTo: string;
  readonly expiresAt: number;
}

/** The pending sign-ins. */
export interface PendingLogins {
  /** Keeps a sign-in; returns the id for its cookie. The oldest are dropped beyond the bound. */
  add(login: Omit<PendingLogin, "expiresAt">): Promise<string>;
  /** Takes (and deletes) the sign-in with this id, if it exists, has not expired and was not taken before. */
  take(id: string | undefined): Promise<PendingLogin | undefined>;
  /** Deletes the expired ones; returns how many. */
  deleteExpired(now: number): Promise<number>;
}

/** How many sign-ins may be under way at once, and for how long each is kept. */
export const MAX_PENDING_LOGINS = 1_000;
export const PENDING_LOGIN_TTL_MS = 10 * 60_000;

const LOGIN_ID = /^[A-Za-z0-9_-]{43}$/;

/** Options of {@link createPendingLogins}. */
export interface PendingLoginsOptions {
  readonly db: Database;
  readonly sealer: Sealer;
  readonly now: () => number;
  readonly max?: number | undefined;
  readonly ttlMs?: number | undefined;
}

/** Creates the bounded pending sign-ins in the database. */
export function createPendingLogins(options: PendingLoginsOptions): PendingLogins {
  const { db, sealer, now } = options;
  const max = options.max ?? MAX_PENDING_LOGINS;
  const ttl = options.ttlMs ?? PENDING_LOGIN_TTL_MS;
  const deleteExpired = (at: number) => db.em().nativeDelete(PendingLoginEntity, { expiresAt: { $lte: at } });
  return {
    async add(login) {
      const at = now();
      const id = randomBytes(32).toString("base64url");
      const sealed: Omit<PendingLogin, "expiresAt"> = { state: login.state, nonce: login.nonce, codeVerifier: login.codeVerifier, returnTo: login.returnTo };
      const em = db.em();
      em.create(PendingLoginEntity, { idHash: sealer.rowKey(id), sealed: sealer.seal(id, sealed), createdAt: at, expiresAt: at + ttl });
      await em.flush();
      // Anyone can start sign-ins: expired ones go first, then the oldest live ones beyond the bound.
      let excess = (await em.count(PendingLoginEntity, {})) - max;
      if (excess > 0) excess -= await deleteExpired(at);
      if (excess > 0) {
        const oldest = await em.find(PendingLoginEntity, {}, { fields: ["idHash"], orderBy: { createdAt: "asc", idHash: "asc" }, limit: excess });
        await em.nativeDelete(PendingLoginEntity, { idHash: { $in: oldest.map((row) => row.idHash) } });
      }
      return id;
    },

    async take(id) {
      if (id === undefined || !LOGIN_ID.test(id)) return undefined;
      const em = db.em();
      const idHash = sealer.rowKey(id);
      const row = await em.findOne(PendingLoginEntity, { idHash });
      if (!row) return undefined;
      // The delete decides: a replayed callback racing this one finds nothing left to delete.
      if ((await em.nativeDelete(PendingLoginEntity, { idHash })) !== 1) return undefined;
      if (row.expiresAt <= now()) return undefined;
      const opened = sealer.open(id, row.sealed);
      return isPending(opened) ? { ...opened, expiresAt: row.expiresAt } : undefined;
    },

    deleteExpired,
  };
}

function isPending(value: unknown): value is Omit<PendingLogin, "expiresAt"> {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.state === "string" && typeof v.nonce === "string" && typeof v.codeVerifier === "string" && typeof v.returnTo === "string";
}
