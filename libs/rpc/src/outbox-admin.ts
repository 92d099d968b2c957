/**
 * The audit outbox as the transport sees it, for every app that relays one: which `Append`
 * failures are permanent refusals (the relay quarantines those events instead of retrying them
 * for ever), and the `ops.v1.OutboxService` admin RPC that lists what was quarantined. Storage
 * comes in as a function, so libs/rpc still knows nothing of the outbox table.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { clampPageSize, type QuarantinedOutboxEvent } from "@lcp/domain";
import { ErrorInfoSchema } from "@lcp/proto/google/rpc/error_details_pb";
import { ListQuarantinedEventsResponseSchema, type OutboxService } from "@lcp/proto/ops/v1/outbox_service_pb";
import { DomainError, fromVerdict } from "./errors.js";

/**
 * Whether an `Append` failure means the audit service will never take this batch as it is:
 * InvalidArgument, except a refused `occurred_at` (a producer clock ahead of audit's by more
 * than the allowed skew is refused today and accepted later). Unavailable, deadlines, connection
 * errors and every other code are retried.
 */
export function isPermanentAuditRefusal(err: unknown): boolean {
  if (!(err instanceof ConnectError) || err.code !== Code.InvalidArgument) return false;
  return err.findDetails(ErrorInfoSchema)[0]?.metadata.field !== "occurred_at";
}

/** Options of {@link createOutboxAdminService}. */
export interface OutboxAdminOptions {
  /** A page of quarantined rows after `afterSeq` in seq order, and whether more follow (`@lcp/persistence` listQuarantinedEvents). */
  list(options: { pageSize: number; afterSeq: number }): Promise<{ events: QuarantinedOutboxEvent[]; more: boolean }>;
}

const PAGE = { default: 50, max: 500 } as const;
const TOKEN_PREFIX = "outbox:";

/** The `ops.v1.OutboxService` handlers of one app, over its own outbox. */
export function createOutboxAdminService(options: OutboxAdminOptions): ServiceImpl<typeof OutboxService> {
  return {
    async listQuarantinedEvents(req) {
      const size = clampPageSize(req.pageSize, PAGE);
      if (!size.ok) throw fromVerdict(size, size.message, { field: "page_size" });
      const afterSeq = req.pageToken ? decodeToken(req.pageToken) : 0;
      const page = await options.list({ pageSize: size.pageSize, afterSeq });
      const last = page.events.at(-1);
      return create(ListQuarantinedEventsResponseSchema, {
        events: page.events.map((e) => ({
          seq: BigInt(e.seq),
          id: e.id,
          action: e.action,
          occurredAt: timestampFromDate(e.occurredAt),
          quarantinedAt: timestampFromDate(e.quarantinedAt),
          reason: e.reason,
          eventCount: e.events,
          payload: e.payload,
        })),
        nextPageToken: page.more && last ? Buffer.from(`${TOKEN_PREFIX}${last.seq}`).toString("base64url") : "",
      });
    },
  };
}

function decodeToken(token: string): number {
  const text = token.length <= 64 ? Buffer.from(token, "base64url").toString("utf8") : "";
  const seq = text.startsWith(TOKEN_PREFIX) && /^[0-9]{1,15}$/.test(text.slice(TOKEN_PREFIX.length)) ? Number(text.slice(TOKEN_PREFIX.length)) : NaN;
  if (!Number.isSafeInteger(seq)) throw new DomainError("PAGE_TOKEN_INVALID", "page_token is not one this service returned", { field: "page_token" });
  return seq;
}
