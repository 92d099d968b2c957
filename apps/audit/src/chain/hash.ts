import { hash as sha256Of } from "node:crypto";
import { canonicalText, type CanonicalEventBody, type CanonicalEventFields } from "./canonical.js";

/** The `prev_hash` of seq 1: 32 zero bytes, hex. */
export const GENESIS_HASH = "0".repeat(64);

const HEX_HASH = /^[0-9a-f]{64}$/;

/**
 * The chain link of one event: `SHA-256(canonical(event) ‖ prev_hash)`, where `prev_hash` is the
 * previous event's hash as 32 raw bytes ({@link GENESIS_HASH} for seq 1). Hashes are stored and
 * passed around as lowercase hex.
 */
export function chainHash(event: CanonicalEventFields, prevHashHex: string): string {
  if (!HEX_HASH.test(prevHashHex)) throw new RangeError("chainHash: prev_hash must be 64 lowercase hex digits");
  return linkHash(canonicalText(event, event.seq, JSON.stringify(event.producer)), prevHashHex);
}

// One buffer holds canonical ‖ prev_hash for every link, so hashing an event costs one UTF-8
// write, one hex decode into place and one native call, with no Hash object, Buffer or
// concatenation per event. 64 KiB covers any event validation lets through (16 KiB of details
// plus bounded text fields); a longer text gets a buffer of its own.
const scratch = Buffer.allocUnsafe(64 * 1024);

/** SHA-256(canonical ‖ prev_hash) as lowercase hex; `prevHashHex` must already be 64 hex digits. */
function linkHash(canonical: string, prevHashHex: string): string {
  const buf = canonical.length * 3 + 32 <= scratch.length ? scratch : Buffer.allocUnsafe(Buffer.byteLength(canonical, "utf8") + 32);
  const n = buf.write(canonical, 0, "utf8");
  buf.write(prevHashHex, n, "hex");
  return sha256Of("sha256", buf.subarray(0, n + 32), "hex");
}

/** One link made by a {@link ChainLinker}: the event's seq and its link fields, as lowercase hex. */
export interface ChainLink {
  readonly seq: number;
  readonly prevHash: string;
  readonly hash: string;
}

/** Extends a chain event by event; see {@link createChainLinker}. */
export interface ChainLinker {
  /** Chains `event` as the next seq; `occurredAtIso` saves formatting the time twice when the caller has it. */
  next(event: CanonicalEventBody, producer: string, occurredAtIso?: string): ChainLink;
  /** The last link made (the head passed in while none is). */
  head(): { seq: number; hash: string };
}

/**
 * Chains events after `head`, the way an append does: each gets the next seq, the previous
 * hash as its prev_hash, and `hash = SHA-256(canonical ‖ prev_hash)` — exactly {@link chainHash},
 * without re-checking the previous hash or re-quoting the producer for every event.
 */
export function createChainLinker(head: { seq: number; hash: string }): ChainLinker {
  if (!HEX_HASH.test(head.hash)) throw new RangeError("createChainLinker: the head hash must be 64 lowercase hex digits");
  let seq = head.seq;
  let prevHex = head.hash;
  let producerName = "";
  let quoted = '""';
  return {
    next(event, producer, occurredAtIso) {
      if (producer !== producerName) {
        producerName = producer;
        quoted = JSON.stringify(producer);
      }
      seq++;
      const link = { seq, prevHash: prevHex, hash: linkHash(canonicalText(event, seq, quoted, occurredAtIso), prevHex) };
      prevHex = link.hash;
      return link;
    },
    head: () => ({ seq, hash: prevHex }),
  };
}

/** A stored event with its link fields, as verification reads it. */
export interface StoredChainEvent extends CanonicalEventFields {
  readonly prevHash: string;
  readonly hash: string;
}

/** Why a link is broken. */
export type ChainBreak =
  | { readonly ok: false; readonly code: "GAP"; readonly seq: number; readonly reason: string }
  | { readonly ok: false; readonly code: "PREV_HASH_MISMATCH"; readonly seq: number; readonly reason: string }
  | { readonly ok: false; readonly code: "HASH_MISMATCH"; readonly seq: number; readonly reason: string };

/** Where a verification pass stands between pages: the seq and hash it expects to continue from. */
export interface ChainCursor {
  /** The seq the next event must have. */
  readonly nextSeq: number;
  /** The hash the next event's prev_hash must equal; undefined when the range starts mid-chain and the first link is taken as read. */
  readonly prevHash: string | undefined;
}

/**
 * Verifies one page of consecutive events (ascending seq) against the cursor. Checks, in this
 * order for each event — the order is the policy: a missing row is reported as a gap before
 * anything else, then a broken link, then a changed event:
 * 1. `seq` is the expected next seq (else GAP at the expected seq);
 * 2. `prev_hash` equals the previous event's stored hash (else PREV_HASH_MISMATCH);
 * 3. `hash` equals the recomputed `SHA-256(canonical ‖ prev_hash)` (else HASH_MISMATCH).
 * Returns the cursor after the page, or the first break.
 */
export function verifyPage(
  events: readonly StoredChainEvent[],
  cursor: ChainCursor,
): { ok: true; cursor: ChainCursor; checked: number } | (ChainBreak & { checked: number }) {
  let { nextSeq, prevHash } = cursor;
  let checked = 0;
  for (const e of events) {
    if (e.seq !== nextSeq) {
      return {
        ok: false,
        code: "GAP",
        seq: nextSeq,
        reason: `gap: seq ${nextSeq} is missing (next stored seq is ${e.seq})`,
        checked,
      };
    }
    checked++;
    if (prevHash !== undefined && e.prevHash !== prevHash) {
      return {
        ok: false,
        code: "PREV_HASH_MISMATCH",
        seq: e.seq,
        reason: e.seq === 1 ? "prev_hash of seq 1 is not the genesis hash" : `prev_hash does not match seq ${e.seq - 1}`,
        checked,
      };
    }
    if (!HEX_HASH.test(e.prevHash)) {
      // Only reachable when the range starts mid-chain: a hand-written, non-hex prev_hash.
      return { ok: false, code: "PREV_HASH_MISMATCH", seq: e.seq, reason: "prev_hash is malformed", checked };
    }
    if (Number.isNaN(e.occurredAt.getTime())) {
      return { ok: false, code: "HASH_MISMATCH", seq: e.seq, reason: "hash mismatch: occurred_at is not a valid time", checked };
    }
    const expected = chainHash(e, e.prevHash);
    if (expected !== e.hash) {
      return { ok: false, code: "HASH_MISMATCH", seq: e.seq, reason: "hash mismatch: the stored event does not match its hash", checked };
    }
    prevHash = e.hash;
    nextSeq++;
  }
  return { ok: true, cursor: { nextSeq, prevHash }, checked };
}
