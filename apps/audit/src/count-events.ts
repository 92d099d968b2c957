/**
 * CountEvents (the console's "state changes per hour"): the request checked and turned into a
 * {@link CountQuery} — a bounded range cut into at most 1,000 buckets of 1 minute to 1 day, at
 * most 32 actions named as `Append` accepts them, a bounded resource type — and the store's
 * counts turned into the answer. Refusals are InvalidArgument naming the field.
 */
import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromMs, type Duration, type Timestamp } from "@bufbuild/protobuf/wkt";
import { AUDIT_EVENT_LIMITS, isValidAuditActionName, plainTextProblem } from "@lcp/domain";
import { CountEventsResponseSchema, EventCountSchema, type CountEventsRequest, type CountEventsResponse } from "@lcp/proto/audit/v1/audit_service_pb";
import { DomainError } from "@lcp/rpc";
import type { BucketCount, CountQuery } from "./storage/audit-store.js";

/** The bounds of a CountEvents request (audit_service.proto). */
export const COUNT_EVENTS_LIMITS = {
  /** Actions one request may name. */
  actions: 32,
  minBucketMs: 60_000,
  maxBucketMs: 86_400_000,
  /** Buckets in the range. */
  buckets: 1_000,
} as const;

function invalid(field: string, message: string): DomainError {
  return new DomainError("INVALID_ARGUMENT", message, { field });
}

/** A valid timestamp as a Date (milliseconds, as events are stored), or the refusal naming `field`. */
export function requestTime(ts: Timestamp | undefined, field: string): Date | undefined {
  if (!ts) return undefined;
  const d = timestampDate(ts);
  if (Number.isNaN(d.getTime()) || ts.nanos < 0 || ts.nanos > 999_999_999) throw invalid(field, `${field} is not a valid timestamp`);
  return d;
}

function bucketWidthMs(d: Duration | undefined): number {
  if (!d) throw invalid("bucket_width", "bucket_width is required (1 minute to 1 day)");
  const { seconds, nanos } = d;
  if (nanos < -999_999_999 || nanos > 999_999_999 || (seconds < 0n && nanos > 0) || (seconds > 0n && nanos < 0)) {
    throw invalid("bucket_width", "bucket_width is not a valid duration");
  }
  if (nanos % 1_000_000 !== 0) throw invalid("bucket_width", "bucket_width must be a whole number of milliseconds");
  const ms = Number(seconds) * 1000 + nanos / 1_000_000;
  if (!(ms >= COUNT_EVENTS_LIMITS.minBucketMs && ms <= COUNT_EVENTS_LIMITS.maxBucketMs)) {
    throw invalid("bucket_width", "bucket_width must be between 1 minute and 1 day");
  }
  return ms;
}

/** Checks a CountEvents request; see the module comment. */
export function validateCountEvents(req: CountEventsRequest): CountQuery {
  if (req.actions.length > COUNT_EVENTS_LIMITS.actions) {
    throw invalid("actions", `actions may name at most ${COUNT_EVENTS_LIMITS.actions} actions (got ${req.actions.length})`);
  }
  const actions: string[] = [];
  for (const [i, action] of req.actions.entries()) {
    // The rule Append stores actions by: a filter on anything else could never match. The value
    // is not echoed back (it may hold anything); its index says which one.
    if (!isValidAuditActionName(action)) {
      throw invalid("actions", `actions[${i}] is not a dotted lowercase action name (e.g. license.revoke) of at most ${AUDIT_EVENT_LIMITS.action} characters`);
    }
    if (!actions.includes(action)) actions.push(action);
  }
  if (req.resourceType.length > AUDIT_EVENT_LIMITS.resourceType) {
    throw invalid("resource_type", `resource_type is longer than ${AUDIT_EVENT_LIMITS.resourceType} characters`);
  }
  const problem = plainTextProblem("resource_type", req.resourceType);
  if (problem) throw invalid("resource_type", problem);
  const start = requestTime(req.startTime, "start_time");
  if (!start) throw invalid("start_time", "start_time is required");
  const end = requestTime(req.endTime, "end_time");
  if (!end) throw invalid("end_time", "end_time is required");
  if (end.getTime() <= start.getTime()) throw invalid("end_time", "end_time must be after start_time");
  const bucketMs = bucketWidthMs(req.bucketWidth);
  const buckets = Math.ceil((end.getTime() - start.getTime()) / bucketMs);
  if (buckets > COUNT_EVENTS_LIMITS.buckets) {
    throw invalid("bucket_width", `start_time to end_time holds ${buckets} buckets of bucket_width; at most ${COUNT_EVENTS_LIMITS.buckets} are allowed (widen the buckets or shorten the range)`);
  }
  return { actions, resourceType: req.resourceType || undefined, start, end, bucketMs };
}

/** The store's counts as the answer: oldest bucket first, actions in code-unit order within one. */
export function countEventsResponse(query: CountQuery, counts: readonly BucketCount[]): CountEventsResponse {
  const sorted = [...counts].sort((a, b) => a.bucket - b.bucket || (a.action < b.action ? -1 : a.action > b.action ? 1 : 0));
  return create(CountEventsResponseSchema, {
    counts: sorted.map((c) =>
      create(EventCountSchema, { bucketStartTime: timestampFromMs(query.start.getTime() + c.bucket * query.bucketMs), action: c.action, count: BigInt(c.count) }),
    ),
  });
}
