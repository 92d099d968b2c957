/**
 * The public JWKS (NEXT, ACTIVE and RETIRED keys; REVOKED ones left out), as GetJwks serves it.
 * GetJwks is public and unauthenticated, so the document is cached for `maxAgeMs` (default 1 s)
 * rather than read from the database on every call; a local change invalidates it at once.
 */
import type { JWK } from "jose";
import { buildJwks } from "@lcp/tokens";
import type { SigningKeyRow } from "../storage/entities.js";
import { jwksOrder } from "./lifecycle.js";

/** The JWKS document and its key ids (ACTIVE first). */
export interface JwksDocument {
  jwksJson: string;
  kids: string[];
}

/** Builds the JWKS document from stored keys (any states; revoked ones are dropped). */
export function jwksDocument(rows: readonly SigningKeyRow[]): JwksDocument {
  const ordered = jwksOrder(rows);
  const jwks = buildJwks(ordered.map((row) => JSON.parse(row.publicJwk) as JWK));
  return { jwksJson: JSON.stringify(jwks), kids: ordered.map((row) => row.kid) };
}

/** A cached JWKS: `get()` the document, `invalidate()` after a key change. */
export interface JwksCache {
  get(): Promise<JwksDocument>;
  invalidate(): void;
}

/** Creates a {@link JwksCache} over a loader of the published keys. */
export function createJwksCache(load: () => Promise<SigningKeyRow[]>, maxAgeMs = 1000): JwksCache {
  let cached: { doc: JwksDocument; at: number } | undefined;
  let loading: Promise<JwksDocument> | undefined;
  let generation = 0;
  return {
    get() {
      if (cached && performance.now() - cached.at < maxAgeMs) return Promise.resolve(cached.doc);
      if (!loading) {
        const started = generation;
        const p = load()
          .then((rows) => {
            const doc = jwksDocument(rows);
            if (generation === started) cached = { doc, at: performance.now() };
            return doc;
          })
          .finally(() => {
            if (loading === p) loading = undefined;
          });
        loading = p;
      }
      return loading;
    },
    invalidate() {
      generation++;
      cached = undefined;
      loading = undefined;
    },
  };
}
