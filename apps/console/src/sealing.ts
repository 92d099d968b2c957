/**
 * What the console keeps in its database is useless to someone who reads the database: rows are
 * keyed by the SHA-256 of the random id in the browser's cookie (never the id itself), and
 * everything else of value — tokens, the CSRF token, who signed in, a sign-in's PKCE verifier —
 * is sealed with AES-256-GCM (`wrapSecret` of @lcp/tokens) under a key derived from `SESSION_KEY`
 * and that cookie id. Opening a row therefore needs both the configured key and the browser's
 * cookie: a copy of the table plus the key still yields no tokens.
 */
import { createHash, hkdfSync } from "node:crypto";
import { KeyWrapError, unwrapSecret, wrapSecret } from "@lcp/tokens";

/** Seals and opens the values of rows keyed by a cookie id. */
export interface Sealer {
  /** The row key for a cookie id: SHA-256, hex (64 characters). */
  rowKey(id: string): string;
  /** `value` as JSON, encrypted under a key of `SESSION_KEY` and `id`, bound to the row key. */
  seal(id: string, value: unknown): string;
  /** The value sealed for `id`, or undefined when it does not open (another key, another id, tampered). */
  open(id: string, sealed: string): unknown;
}

/** The size of `SESSION_KEY` (AES-256). */
export const SESSION_KEY_BYTES = 32;

/** Creates a sealer under `sessionKey` (32 bytes); `purpose` separates the tables' keys. */
export function createSealer(sessionKey: Uint8Array, purpose: "session" | "pending-login"): Sealer {
  if (sessionKey.length !== SESSION_KEY_BYTES) throw new Error(`the session key must be ${SESSION_KEY_BYTES} bytes`);
  const rowKey = (id: string) => createHash("sha256").update(id, "utf8").digest("hex");
  // HKDF with the cookie id as salt: one key per row, so neither the key alone nor the table
  // alone (nor both without the browser's cookie) opens a row.
  const keyFor = (id: string) => new Uint8Array(hkdfSync("sha256", sessionKey, Buffer.from(id, "utf8"), `lcp-console ${purpose} v1`, SESSION_KEY_BYTES));
  return {
    rowKey,
    seal: (id, value) => wrapSecret(keyFor(id), JSON.stringify(value), rowKey(id)),
    open(id, sealed) {
      try {
        return JSON.parse(Buffer.from(unwrapSecret(keyFor(id), sealed, rowKey(id))).toString("utf8")) as unknown;
      } catch (err) {
        if (err instanceof KeyWrapError || err instanceof SyntaxError) return undefined;
        throw err;
      }
    },
  };
}
