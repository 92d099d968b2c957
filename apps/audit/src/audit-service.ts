import type { ServiceImpl } from "@connectrpc/connect";
import { clampPageSize, plainTextProblem } from "@lcp/domain";
import { isConnectionError, isSerializationFailure } from "@lcp/persistence";
import { AuditService, Outcome } from "@lcp/proto/audit/v1/audit_service_pb";
import { DomainError, principalKey } from "@lcp/rpc";
import { countEventsResponse, requestTime, validateCountEvents } from "./count-events.js";
import { toProtoEvent } from "./event-mapping.js";
import { decodePageToken, encodePageToken } from "./page-token.js";
import type { AppendResult, AuditStore, EventFilter } from "./storage/audit-store.js";
import { OUTCOME_NAMES, validateAppendBatch, type NormalizedEvent } from "./validate.js";

/** ListEvents page sizes (audit_service.proto): 0 → 100, at most 500. */
export const LIST_PAGE_SIZE = { default: 100, max: 500 } as const;

const MAX_FILTER_TEXT = 256;
// A busy SQLite file or a PostgreSQL deadlock is a lost race, not a failure: try again a few
// times before telling the relay to come back later.
const APPEND_ATTEMPTS = 3;

/** What the AuditService handlers need. */
export interface AuditServiceOptions {
  readonly store: AuditStore;
  /** The service's clock (tests inject one). */
  readonly now: () => Date;
  /** How far a producer's `occurred_at` may lie ahead of this clock. */
  readonly maxClockSkewMs: number;
}

/**
 * Appends validated events with retries on lost races; a database that cannot be reached
 * answers Unavailable, so the producer's outbox relay keeps the batch and retries.
 */
export async function appendWithRetry(store: AuditStore, producer: string, events: readonly NormalizedEvent[], now: Date): Promise<AppendResult> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await store.append(producer, events, now);
    } catch (err) {
      if (isSerializationFailure(err) && attempt < APPEND_ATTEMPTS) continue;
      if (isConnectionError(err) || isSerializationFailure(err)) {
        throw new DomainError("UNAVAILABLE", "the audit log is temporarily unavailable; retry the batch");
      }
      throw err;
    }
  }
}

/** The audit.v1.AuditService handlers: thin over the validation and the store. */
export function createAuditService(options: AuditServiceOptions): ServiceImpl<typeof AuditService> {
  const { store } = options;
  return {
    async countEvents(req) {
      const query = validateCountEvents(req);
      return countEventsResponse(query, await store.count(query));
    },
    async append(req, ctx) {
      const principal = ctx.values.get(principalKey);
      // The policy admits only service identities; this guards a misconfigured table, because
      // `producer` must come from a certificate, never from the request.
      if (principal.kind !== "service") {
        throw new DomainError("PERMISSION_DENIED", "Append is internal to the control-plane services");
      }
      const now = options.now();
      const verdict = validateAppendBatch(req.events, now, options.maxClockSkewMs);
      if (!verdict.ok) {
        throw new DomainError("INVALID_ARGUMENT", verdict.message, {
          ...(verdict.index !== undefined ? { index: String(verdict.index) } : {}),
          ...(verdict.field ? { field: verdict.field } : {}),
        });
      }
      const result = await appendWithRetry(store, principal.name, verdict.events, now);
      return { appended: result.appended, duplicates: result.duplicates, headSeq: BigInt(result.headSeq) };
    },

    async listEvents(req) {
      const size = clampPageSize(req.pageSize, LIST_PAGE_SIZE);
      if (!size.ok) throw new DomainError("INVALID_ARGUMENT", size.message, { field: "page_size" });
      let outcome: string | undefined;
      if (req.outcome !== Outcome.UNSPECIFIED) {
        outcome = OUTCOME_NAMES.get(req.outcome);
        if (!outcome) throw new DomainError("INVALID_ARGUMENT", `outcome ${req.outcome} is not a known outcome`, { field: "outcome" });
      }
      for (const [field, value] of [
        ["action", req.action],
        ["resource_type", req.resourceType],
        ["resource_id", req.resourceId],
        ["actor_id", req.actorId],
      ] as const) {
        if (value.length > MAX_FILTER_TEXT) throw new DomainError("INVALID_ARGUMENT", `${field} is longer than ${MAX_FILTER_TEXT} characters`, { field });
        // A filter no stored event can match (they are plain text) is a caller's mistake, said as one.
        const problem = plainTextProblem(field, value);
        if (problem) throw new DomainError("INVALID_ARGUMENT", problem, { field });
      }
      const startTime = requestTime(req.startTime, "start_time");
      const endTime = requestTime(req.endTime, "end_time");
      if (startTime && endTime && startTime.getTime() > endTime.getTime()) {
        throw new DomainError("INVALID_ARGUMENT", "start_time is after end_time", { field: "start_time" });
      }
      const filter: EventFilter = {
        action: req.action || undefined,
        resourceType: req.resourceType || undefined,
        resourceId: req.resourceId || undefined,
        actorId: req.actorId || undefined,
        outcome,
        startTime,
        endTime,
      };
      let beforeSeq: number | undefined;
      if (req.pageToken) {
        const cursor = decodePageToken(req.pageToken, filter);
        if (!cursor.ok) throw new DomainError("PAGE_TOKEN_INVALID", cursor.message, { field: "page_token" });
        beforeSeq = cursor.beforeSeq;
      }
      // One extra row says whether another page exists, so the last page has no token.
      const rows = await store.list(filter, beforeSeq, size.pageSize + 1);
      const page = rows.slice(0, size.pageSize);
      const last = page[page.length - 1];
      return {
        events: page.map(toProtoEvent),
        nextPageToken: rows.length > size.pageSize && last ? encodePageToken(last.seq, filter) : "",
      };
    },

    async verifyChain(req) {
      if (req.fromSeq < 0n || req.toSeq < 0n) throw new DomainError("INVALID_ARGUMENT", "from_seq and to_seq must not be negative");
      if (req.toSeq !== 0n && req.fromSeq > req.toSeq) throw new DomainError("INVALID_ARGUMENT", "from_seq is after to_seq", { field: "from_seq" });
      const safe = (v: bigint) => (v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v));
      const result = await store.verify(req.fromSeq === 0n ? undefined : safe(req.fromSeq), req.toSeq === 0n ? undefined : safe(req.toSeq));
      return result.ok
        ? { ok: true, checked: BigInt(result.checked), headSeq: BigInt(result.headSeq), firstBrokenSeq: 0n, reason: "" }
        : { ok: false, checked: BigInt(result.checked), headSeq: BigInt(result.headSeq), firstBrokenSeq: BigInt(result.seq), reason: result.reason };
    },
  };
}
