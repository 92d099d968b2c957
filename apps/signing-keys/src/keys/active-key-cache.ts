/**
 * The ACTIVE key's unwrapped material, cached in memory so Sign costs one Ed25519 signature and
 * no database round trip.
 *
 * Freshness: a local change invalidates at once (the store's onChange); a change made by another
 * replica is seen within `recheckMs` (default 1 s), when the next Sign re-reads the ACTIVE kid —
 * one indexed lookup shared by every caller waiting at that moment. The private key is unwrapped
 * again only when the kid differs.
 */
import type { ActiveKeyMaterial } from "./key-store.js";

/** Where the cache reads from. */
export interface ActiveKeySource {
  activeKid(): Promise<string | null>;
  activeKeyMaterial(): Promise<ActiveKeyMaterial | null>;
}

/** Options of {@link createActiveKeyCache}. */
export interface ActiveKeyCacheOptions {
  source: ActiveKeySource;
  /** How long a confirmed ACTIVE kid (or its absence) is trusted without asking the database. */
  recheckMs?: number;
}

/** The cache: `get()` the ACTIVE key (null when none may sign), `invalidate()` after a change. */
export interface ActiveKeyCache {
  get(): Promise<ActiveKeyMaterial | null>;
  invalidate(): void;
}

/** Creates an {@link ActiveKeyCache}. */
export function createActiveKeyCache(options: ActiveKeyCacheOptions): ActiveKeyCache {
  const recheckMs = options.recheckMs ?? 1000;
  // undefined: unknown (never read, or invalidated); null: confirmed that no key is ACTIVE.
  let current: ActiveKeyMaterial | null | undefined;
  let checkedAt = 0;
  let refreshing: Promise<ActiveKeyMaterial | null> | undefined;
  // Bumped by invalidate(): a refresh that started before a change must not store what it read.
  let generation = 0;

  async function refresh(): Promise<ActiveKeyMaterial | null> {
    const started = generation;
    const known = current;
    let next: ActiveKeyMaterial | null;
    if (known) {
      const kid = await options.source.activeKid();
      next = kid === known.kid ? known : kid === null ? null : await options.source.activeKeyMaterial();
    } else {
      next = await options.source.activeKeyMaterial();
    }
    if (generation === started) {
      current = next;
      checkedAt = performance.now();
    }
    return next;
  }

  return {
    get() {
      if (current !== undefined && performance.now() - checkedAt < recheckMs) return Promise.resolve(current);
      if (!refreshing) {
        const p = refresh().finally(() => {
          if (refreshing === p) refreshing = undefined;
        });
        refreshing = p;
      }
      return refreshing;
    },
    invalidate() {
      generation++;
      current = undefined;
      // Callers arriving from now on start a new read instead of joining one that may predate the change.
      refreshing = undefined;
    },
  };
}
