/**
 * Reading the outbox rows the relay quarantined (the audit service refused their event as
 * permanently invalid): their count for the `outbox_quarantined_events` metric, and a page of
 * them for the `ListQuarantinedEvents` admin RPC each relaying app serves.
 */
import type { QuarantinedOutboxEvent } from "@lcp/domain";
import type { Database } from "./orm.js";
import { OutboxEvent, outboxRowEvents } from "./outbox.js";

/** Options of {@link listQuarantinedEvents}. */
export interface ListQuarantinedOptions {
  pageSize: number;
  /** Rows with a seq above this one (the previous page's last seq); 0 for the first page. */
  afterSeq?: number;
}

/** Quarantined rows (rows, not events) of this app's outbox. */
export async function quarantinedEventCount(db: Database): Promise<number> {
  return db.em().count(OutboxEvent, { quarantinedAt: { $ne: null } });
}

/** A page of quarantined rows in seq order, and whether more follow. */
export async function listQuarantinedEvents(db: Database, options: ListQuarantinedOptions): Promise<{ events: QuarantinedOutboxEvent[]; more: boolean }> {
  const rows = await db
    .em()
    .find(OutboxEvent, { quarantinedAt: { $ne: null }, seq: { $gt: options.afterSeq ?? 0 } }, { orderBy: { seq: "asc" }, limit: options.pageSize + 1 });
  const more = rows.length > options.pageSize;
  return {
    more,
    events: rows.slice(0, options.pageSize).map((row) => ({
      seq: row.seq,
      id: row.id,
      action: row.action,
      occurredAt: row.occurredAt,
      quarantinedAt: row.quarantinedAt!,
      reason: row.lastError ?? "",
      events: eventCount(row.payload),
      payload: row.payload,
    })),
  };
}

function eventCount(payload: string): number {
  try {
    return outboxRowEvents({ payload }).length;
  } catch {
    // A row that does not parse still counts as what it was stored as: one row to look at.
    return 1;
  }
}
