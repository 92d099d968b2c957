/**
 * The development identity provider's storage: oidc-provider's models (sessions, grants, codes,
 * tokens, interactions) in memory, one store per provider, with an index by account so a user can
 * be signed out everywhere at once (`revokeUser`). Nothing here survives a restart, by design:
 * after one, every user signs in again (keys and cookie secrets, which do persist, live in files).
 */
import type { Adapter, AdapterPayload } from "oidc-provider";

interface Entry {
  readonly model: string;
  readonly payload: AdapterPayload;
  /** Epoch ms; the entry is gone after it. */
  readonly expiresAt: number;
}

/** One provider's in-memory storage: the adapter class oidc-provider instantiates per model, and the account-wide revocation. */
export interface DevIdpStore {
  /** Passed as oidc-provider's `adapter`. */
  readonly Adapter: new (model: string) => Adapter;
  /** Removes every session, grant, code, token and interaction of `accountId`, and everything issued under its grants. */
  revokeAccount(accountId: string): void;
}

/** Models whose entries hang off a grant (removed with it). */
const GRANTABLE = new Set(["AccessToken", "AuthorizationCode", "RefreshToken", "DeviceCode", "BackchannelAuthenticationRequest"]);
/** Expired entries are swept every this many writes, so a long-running dev IdP does not grow forever. */
const SWEEP_EVERY = 500;

/** Creates an empty store. */
export function createDevIdpStore(now: () => number = Date.now): DevIdpStore {
  const entries = new Map<string, Entry>();
  const sessionByUid = new Map<string, string>();
  let writes = 0;

  const key = (model: string, id: string) => `${model}:${id}`;
  const live = (k: string): Entry | undefined => {
    const entry = entries.get(k);
    if (entry && entry.expiresAt <= now()) {
      entries.delete(k);
      return undefined;
    }
    return entry;
  };
  const sweep = () => {
    const t = now();
    for (const [k, entry] of entries) if (entry.expiresAt <= t) entries.delete(k);
    for (const [uid, k] of sessionByUid) if (!entries.has(k)) sessionByUid.delete(uid);
  };
  const removeGrant = (grantId: string) => {
    for (const [k, entry] of entries) {
      if ((GRANTABLE.has(entry.model) && entry.payload.grantId === grantId) || k === key("Grant", grantId)) entries.delete(k);
    }
  };

  class MemoryAdapter implements Adapter {
    constructor(private readonly model: string) {}

    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      const k = key(this.model, id);
      entries.set(k, { model: this.model, payload, expiresAt: now() + expiresIn * 1000 });
      if (this.model === "Session" && typeof payload.uid === "string") sessionByUid.set(payload.uid, k);
      if (++writes % SWEEP_EVERY === 0) sweep();
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      return live(key(this.model, id))?.payload;
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      const k = sessionByUid.get(uid);
      return k === undefined ? undefined : live(k)?.payload;
    }

    async findByUserCode(): Promise<AdapterPayload | undefined> {
      // The device flow is not enabled.
      return undefined;
    }

    async consume(id: string): Promise<void> {
      const entry = live(key(this.model, id));
      if (entry) entry.payload.consumed = Math.floor(now() / 1000);
    }

    async destroy(id: string): Promise<void> {
      entries.delete(key(this.model, id));
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      removeGrant(grantId);
    }
  }

  return {
    Adapter: MemoryAdapter,
    revokeAccount(accountId) {
      const grants = new Set<string>();
      for (const [k, entry] of entries) {
        const session = entry.payload.session as { accountId?: unknown } | undefined;
        if (entry.payload.accountId === accountId || (entry.model === "Interaction" && session?.accountId === accountId)) {
          if (typeof entry.payload.grantId === "string") grants.add(entry.payload.grantId);
          if (entry.model === "Grant") grants.add(k.slice("Grant:".length));
          entries.delete(k);
        }
      }
      for (const grantId of grants) removeGrant(grantId);
      for (const [uid, k] of sessionByUid) if (!entries.has(k)) sessionByUid.delete(uid);
    },
  };
}
