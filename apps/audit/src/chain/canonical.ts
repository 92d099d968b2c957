/**
 * The ONE canonical encoding of an audit event, the input of its hash (docs/design.md §7).
 *
 * An event is encoded as the UTF-8 bytes of a JSON array with this fixed field order and no
 * whitespace (`JSON.stringify` of each element, joined by `,`):
 *
 * ```
 * ["lcp.audit.v1", seq, id, occurred_at, actor_kind, actor_id, [actor_roles…], action,
 *  resource_type, resource_id, outcome, request_id, details, producer]
 * ```
 *
 * - `"lcp.audit.v1"`: a version tag, so a future encoding can never collide with this one;
 * - `seq`: JSON number (gapless from 1; safe integers only);
 * - `id`: the event UUID, lowercase;
 * - `occurred_at`: ISO-8601 in UTC with milliseconds (`2025-11-26T14:30:00.123Z`); the service
 *   truncates incoming timestamps to milliseconds before storing, so the stored value re-encodes
 *   exactly on every driver;
 * - `actor_kind` and `outcome`: lowercase names (`admin|service|appliance|system|anonymous`,
 *   `success|denied|failure`), never enum numbers;
 * - `actor_roles`: JSON array of strings, in the order the producer sent them;
 * - strings absent in the request (resource, request id) are `""`;
 * - `details`: the stored details text, inlined as JSON (not as a string), `{}` when absent.
 *   It is the text the producer sent in `details_json` (validated as one JSON object, kept
 *   verbatim: whitespace and key order included), or, for a `google.protobuf.Struct`, its
 *   canonical JSON ({@link canonicalJson}: object keys sorted by UTF-16 code units, recursively;
 *   no whitespace; numbers as ECMAScript `JSON.stringify` prints them). Outbox relays send the
 *   canonical JSON as `details_json`, so either form of the same details hashes the same.
 *   Verification hashes the stored text verbatim, so any byte change to it is detected;
 * - `producer`: the calling service's name, from its certificate.
 *
 * `recorded_at`, `prev_hash` and `hash` are not part of the encoding: the previous hash is
 * appended as raw bytes by the chain (`hash = SHA-256(canonical ‖ prev_hash)`, see `hash.ts`).
 */

import { canonicalJson } from "@lcp/persistence";

/**
 * Canonical JSON of a details Struct (`@lcp/persistence`): one implementation for the relays
 * that send `details_json` and for this service, which encodes a Struct with it.
 */
export { canonicalJson };

/** The version tag that opens every canonical encoding. */
export const CANONICAL_VERSION = "lcp.audit.v1";

/** Who acted, as stored and encoded. */
export type ActorKindName = "admin" | "service" | "appliance" | "system" | "anonymous";
/** How it went, as stored and encoded. */
export type OutcomeName = "success" | "denied" | "failure";

/** The fields of an event that its hash covers, less the two the audit service assigns. */
export interface CanonicalEventBody {
  readonly id: string;
  readonly occurredAt: Date;
  readonly actorKind: string;
  readonly actorId: string;
  readonly actorRoles: readonly string[];
  readonly action: string;
  readonly resourceType: string;
  readonly resourceId: string;
  readonly outcome: string;
  readonly requestId: string;
  /** The stored details text: the text of one JSON object (see the module comment). */
  readonly details: string;
}

/** The fields of a stored event that its hash covers. */
export interface CanonicalEventFields extends CanonicalEventBody {
  readonly seq: number;
  readonly producer: string;
}

/** The canonical encoding of an event, as text (see the module comment for the layout). */
export function canonicalEventText(e: CanonicalEventFields): string {
  return canonicalText(e, e.seq, JSON.stringify(e.producer));
}

/**
 * {@link canonicalEventText} of `e` at `seq`, with the producer already JSON-quoted (once per
 * batch, not per event) and `occurred_at` as ISO text when the caller needs that text too. One `JSON.stringify` of the leading fields writes exactly what
 * stringifying each and joining with `,` would, in one native call instead of eleven.
 */
export function canonicalText(e: CanonicalEventBody, seq: number, quotedProducer: string, occurredAtIso: string = e.occurredAt.toISOString()): string {
  if (!Number.isSafeInteger(seq) || seq < 1) throw new RangeError(`canonical: seq ${seq} is not a positive safe integer`);
  const head = JSON.stringify([
    CANONICAL_VERSION,
    seq,
    e.id,
    occurredAtIso,
    e.actorKind,
    e.actorId,
    e.actorRoles,
    e.action,
    e.resourceType,
    e.resourceId,
    e.outcome,
    e.requestId,
  ]);
  // Inlined as JSON, not as a string: the stored text already is one JSON object.
  return `${head.slice(0, -1)},${e.details},${quotedProducer}]`;
}
