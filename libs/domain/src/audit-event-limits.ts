/**
 * What an audit event may hold, in one place: the audit service's `Append` validation refuses
 * anything outside these limits, and every producer builds its events through
 * {@link sanitizeAuditText}, {@link sanitizeAuditRoles} and {@link boundAuditDetails}, which
 * bring untrusted text inside them. A refused event would otherwise sit at the head of its
 * producer's outbox, so one odd request (a licence id holding NUL, a 20,000-character reason)
 * could stop that service's audit delivery.
 */

import { utf8ByteLength } from "./fingerprint.js";
import { escapeForbiddenCharacters } from "./text.js";

/** The limits `Append` enforces (audit_service.proto); lengths are UTF-16 code units, as JavaScript counts them. */
export const AUDIT_EVENT_LIMITS = {
  /** Events per `Append`. */
  batchEvents: 1_000,
  /** The details' canonical JSON, in UTF-8 bytes. */
  detailsBytes: 16 * 1024,
  action: 128,
  /** actor.id and resource.id. */
  idText: 256,
  resourceType: 64,
  requestId: 128,
  /** How many actor.roles. */
  roles: 32,
  /** One role name. */
  role: 64,
} as const;

/** A dotted lowercase action name, e.g. `license.revoke` (at most `AUDIT_EVENT_LIMITS.action` characters). */
export const AUDIT_ACTION_PATTERN = /^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)*$/;

/** Whether `action` is a name `Append` accepts. */
export function isValidAuditActionName(action: string): boolean {
  return action.length > 0 && action.length <= AUDIT_EVENT_LIMITS.action && AUDIT_ACTION_PATTERN.test(action);
}

/**
 * Whether a text field holds a character `Append` refuses. NUL only: PostgreSQL text cannot
 * store it, so refusing it keeps both drivers storing the same bytes. Producers escape far more
 * ({@link sanitizeAuditText}); the service stays lenient so old producers' events still go in.
 */
export function hasRefusedAuditChar(text: string): boolean {
  return text.includes("\0");
}

/** Appended to a text cut short, so a reader of the trail sees that something was left out. */
export const AUDIT_TRUNCATION_MARKER = "…[truncated]";

/** Longest string kept inside details; a longer one is cut (with the marker) before the size check. */
export const MAX_AUDIT_DETAIL_STRING = 2_048;

/**
 * `text` made safe for an audit text field of at most `max` characters: every character the
 * request validators refuse (text.ts: controls, bidirectional overrides, lone surrogates, …)
 * written as its visible `\uXXXX` escape (so the trail shows what was sent), then cut to `max` with
 * {@link AUDIT_TRUNCATION_MARKER} at the end. Idempotent: a sanitised text sanitises to itself.
 */
export function sanitizeAuditText(text: string, max: number): string {
  return truncateText(escapeForbiddenCharacters(text), max);
}

function truncateText(text: string, max: number): string {
  if (text.length <= max) return text;
  const keep = Math.max(0, max - AUDIT_TRUNCATION_MARKER.length);
  let cut = text.slice(0, keep);
  // Never leave half a surrogate pair behind the cut.
  const last = cut.charCodeAt(cut.length - 1);
  if (last >= 0xd800 && last <= 0xdbff) cut = cut.slice(0, -1);
  return (cut + AUDIT_TRUNCATION_MARKER).slice(0, max);
}

/** At most `AUDIT_EVENT_LIMITS.roles` role names, each sanitised to `AUDIT_EVENT_LIMITS.role` characters. */
export function sanitizeAuditRoles(roles: readonly string[]): string[] {
  return roles.slice(0, AUDIT_EVENT_LIMITS.roles).map((r) => sanitizeAuditText(r, AUDIT_EVENT_LIMITS.role));
}

/** What stands in for a details value (or the whole details) too large to keep. */
export interface TruncatedDetail {
  readonly truncated: true;
  /** The UTF-8 size of the JSON that was left out. */
  readonly bytes: number;
}

/** UTF-8 bytes of a JSON value's text (the same count as its canonical JSON: only key order differs). */
export function jsonBytes(value: unknown): number {
  return utf8ByteLength(JSON.stringify(value) ?? "null");
}

/**
 * Details within `AUDIT_EVENT_LIMITS.detailsBytes`, from JSON-compatible details (the result of
 * a JSON round trip): strings longer than {@link MAX_AUDIT_DETAIL_STRING} are cut with the
 * marker; if that is not enough, the largest top-level values are replaced by
 * {@link TruncatedDetail} summaries until the rest fits, and as a last resort the whole details
 * become one summary. Small fields (a refusal code) survive a huge neighbour (its message).
 */
export function boundAuditDetails(details: Record<string, unknown>): Record<string, unknown> {
  const limit = AUDIT_EVENT_LIMITS.detailsBytes;
  const cut = cutLongStrings(details) as Record<string, unknown>;
  let size = jsonBytes(cut);
  if (size <= limit) return cut;
  const sizes = Object.entries(cut)
    .map(([key, value]) => ({ key, bytes: jsonBytes(value) }))
    .sort((a, b) => b.bytes - a.bytes);
  const out = { ...cut };
  for (const { key, bytes } of sizes) {
    // Summarising small values gains nothing: past them only the whole-details summary helps.
    if (bytes < 64) break;
    const summary: TruncatedDetail = { truncated: true, bytes };
    out[key] = summary;
    size = jsonBytes(out);
    if (size <= limit) return out;
  }
  return { truncated: true, bytes: jsonBytes(cut) } satisfies TruncatedDetail;
}

function cutLongStrings(value: unknown): unknown {
  if (typeof value === "string") return truncateText(value, MAX_AUDIT_DETAIL_STRING);
  if (Array.isArray(value)) return value.map(cutLongStrings);
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[truncateText(k, MAX_AUDIT_DETAIL_STRING)] = cutLongStrings(v);
    return out;
  }
  return value;
}

/**
 * An outbox row its relay set aside because the audit service refused its event as permanently
 * invalid: what the outbox storage lists and the `ListQuarantinedEvents` admin RPC answers.
 */
export interface QuarantinedOutboxEvent {
  /** The row's outbox sequence number (the page cursor). */
  readonly seq: number;
  /** The row's event id (a run's row: the id of its first event). */
  readonly id: string;
  readonly action: string;
  readonly occurredAt: Date;
  readonly quarantinedAt: Date;
  /** The audit service's refusal, as the relay received it. */
  readonly reason: string;
  /** How many events the row holds (a run holds many). */
  readonly events: number;
  /** The event as the producer recorded it (protobuf JSON; a run's payload as stored). */
  readonly payload: string;
}
