/**
 * The audit store's contract: what the service appends, lists and verifies through, whichever
 * driver's store implements it. The stores import it from here, the factory picks one.
 */
import type { ChainBreak, StoredChainEvent } from "../chain/hash.js";
import type { NormalizedEvent } from "../validate.js";

/** A stored event as the service reads it back (every column of `audit_event`). */
export interface StoredEvent extends StoredChainEvent {
  readonly recordedAt: Date;
}

/** What one append did. */
export interface AppendResult {
  /** Events newly chained. */
  readonly appended: number;
  /** Events whose id was already stored (or repeated within the batch): counted, not re-chained. */
  readonly duplicates: number;
  /** The chain head after the batch. */
  readonly headSeq: number;
}

/** ListEvents filters, already validated; empty strings and undefined mean "any". */
export interface EventFilter {
  readonly action?: string | undefined;
  readonly resourceType?: string | undefined;
  readonly resourceId?: string | undefined;
  readonly actorId?: string | undefined;
  readonly outcome?: string | undefined;
  /** Inclusive. */
  readonly startTime?: Date | undefined;
  /** Exclusive. */
  readonly endTime?: Date | undefined;
}

/** A validated CountEvents query. */
export interface CountQuery {
  /** Only these actions; all when empty. */
  readonly actions: readonly string[];
  readonly resourceType?: string | undefined;
  /** Inclusive; buckets are aligned to it. */
  readonly start: Date;
  /** Exclusive. */
  readonly end: Date;
  readonly bucketMs: number;
}

/** Events of one action in one bucket (numbered from 0 at `start`). */
export interface BucketCount {
  readonly bucket: number;
  readonly action: string;
  readonly count: number;
}

/** The answer of a chain verification. */
export type VerifyResult =
  | { readonly ok: true; readonly checked: number; readonly headSeq: number }
  | {
      readonly ok: false;
      readonly checked: number;
      readonly headSeq: number;
      readonly seq: number;
      readonly reason: string;
      readonly code: ChainBreak["code"] | "HEAD_MISMATCH";
    };

/**
 * The audit log's storage: appends extend the hash chain under the chain-head lock, reads page
 * by seq.
 *
 * The ORM owns the schema (entities, committed migrations); the statements here run on the
 * driver directly, on a connection of their own, with prepared statements: an append is one
 * transaction of four statements however large the batch, where a unit-of-work flush (or even
 * the query builder) would cost a change-set, an SQL build and a statement prepare per call —
 * more than the insert itself (docs/design.md §11: Append ≥ 0.4× a bare batched INSERT).
 */
export interface AuditStore {
  /** Appends `events` for `producer` in one transaction; idempotent by event id. */
  append(producer: string, events: readonly NormalizedEvent[], recordedAt: Date): Promise<AppendResult>;
  /** Newest first: events matching `filter` with `seq < beforeSeq` (all when undefined), at most `limit`. */
  list(filter: EventFilter, beforeSeq: number | undefined, limit: number): Promise<StoredEvent[]>;
  /** Events matching `query` per bucket and action, counted by the database (non-empty pairs only). */
  count(query: CountQuery): Promise<BucketCount[]>;
  /** Recomputes the chain over [fromSeq, toSeq] (defaults: 1 and the head), page by page. */
  verify(fromSeq: number | undefined, toSeq: number | undefined): Promise<VerifyResult>;
  /** The seq and hash of the chain head (seq 0 and the genesis hash when empty). */
  head(): Promise<{ seq: number; hash: string }>;
  /** Closes the store's own connections (not the ORM's). Idempotent. */
  close(): Promise<void>;
}
