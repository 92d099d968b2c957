import { GENESIS_HASH, verifyPage, type ChainCursor } from "../chain/hash.js";
import type { StoredEvent, VerifyResult } from "./types.js";

/** What a verification pass reads from a driver. */
export interface ChainReader {
  head(): Promise<{ seq: number; hash: string }>;
  /** The stored hash of `seq`, or undefined when that row is missing. */
  hashOf(seq: number): Promise<string | undefined>;
  /** Up to `limit` events with from ≤ seq ≤ to, ascending. */
  page(from: number, to: number, limit: number): Promise<StoredEvent[]>;
}

/**
 * Verifies [fromSeq, toSeq] (defaults: 1 and the head; `toSeq` is clamped to the head read at
 * the start, so appends during the walk are not its business), one page at a time so memory
 * stays flat however long the chain.
 */
export async function walkChain(reader: ChainReader, fromSeq: number | undefined, toSeq: number | undefined, pageSize: number): Promise<VerifyResult> {
  const h = await reader.head();
  const from = fromSeq ?? 1;
  const to = Math.min(toSeq ?? h.seq, h.seq);
  if (from > to) return { ok: true, checked: 0, headSeq: h.seq };

  // Starting mid-chain, link the first event to its stored predecessor; if that row is gone
  // too, the first link is taken as read (the range was asked for, not what precedes it).
  const prevHash = from === 1 ? GENESIS_HASH : await reader.hashOf(from - 1);
  let cursor: ChainCursor = { nextSeq: from, prevHash };
  let checked = 0;
  while (cursor.nextSeq <= to) {
    const page = await reader.page(cursor.nextSeq, to, pageSize);
    if (page.length === 0) break;
    const result = verifyPage(page, cursor);
    checked += result.checked;
    if (!result.ok) return { ok: false, checked, headSeq: h.seq, seq: result.seq, reason: result.reason, code: result.code };
    cursor = result.cursor;
  }
  if (cursor.nextSeq <= to) {
    return { ok: false, checked, headSeq: h.seq, seq: cursor.nextSeq, reason: `gap: seq ${cursor.nextSeq} is missing`, code: "GAP" };
  }
  // The head row closes the chain: a rewritten last event shows here even if re-hashed.
  if (to === h.seq && cursor.prevHash !== undefined && cursor.prevHash !== h.hash) {
    return { ok: false, checked, headSeq: h.seq, seq: h.seq, reason: `the chain head does not match seq ${h.seq}`, code: "HEAD_MISMATCH" };
  }
  return { ok: true, checked, headSeq: h.seq };
}
