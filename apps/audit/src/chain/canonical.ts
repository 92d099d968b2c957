/**
 * The ONE canonical encoding of an audit event, the input of its hash (DESIGN.md §7).
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
 * - `details`: canonical JSON ({@link canonicalJson}: object keys sorted by UTF-16 code units,
 *   recursively; no whitespace; numbers as ECMAScript `JSON.stringify` prints them), inlined as
 *   JSON (not as a string). `{}` when absent. It is stored as exactly this text, and verification
 *   hashes the stored text verbatim, so any byte change to it is detected;
 * - `producer`: the calling service's name, from its certificate.
 *
 * `recorded_at`, `prev_hash` and `hash` are not part of the encoding: the previous hash is
 * appended as raw bytes by the chain (`hash = SHA-256(canonical ‖ prev_hash)`, see `hash.ts`).
 */

/** The version tag that opens every canonical encoding. */
export const CANONICAL_VERSION = "lcp.audit.v1";

/** Who acted, as stored and encoded. */
export type ActorKindName = "admin" | "service" | "appliance" | "system" | "anonymous";
/** How it went, as stored and encoded. */
export type OutcomeName = "success" | "denied" | "failure";

/** The fields of a stored event that its hash covers. */
export interface CanonicalEventFields {
  readonly seq: number;
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
  /** Canonical JSON text of the details object (see {@link canonicalJson}). */
  readonly details: string;
  readonly producer: string;
}

/** A JSON value as found in a `google.protobuf.Struct`. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/**
 * Canonical JSON text of a JSON value: object keys sorted (UTF-16 code unit order, as
 * `Array.prototype.sort` compares strings), no whitespace, numbers and strings as
 * `JSON.stringify` writes them. Non-finite numbers (a Struct can carry NaN) become `null`,
 * exactly as `JSON.stringify` would, so the text always parses back to an equal value.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || value === undefined) return "null";
  switch (typeof value) {
    case "string":
    case "boolean":
      return JSON.stringify(value);
    case "number":
      return Number.isFinite(value) ? JSON.stringify(value) : "null";
    case "object": {
      if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj)
        .filter((k) => obj[k] !== undefined)
        .sort();
      return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(",")}}`;
    }
    default:
      // bigint, function, symbol: nothing a Struct can hold.
      throw new TypeError(`canonicalJson: unsupported value of type ${typeof value}`);
  }
}

/** The canonical encoding of an event, as text (see the module comment for the layout). */
export function canonicalEventText(e: CanonicalEventFields): string {
  if (!Number.isSafeInteger(e.seq) || e.seq < 1) throw new RangeError(`canonical: seq ${e.seq} is not a positive safe integer`);
  const s = JSON.stringify;
  return (
    `[${s(CANONICAL_VERSION)},${e.seq},${s(e.id)},${s(e.occurredAt.toISOString())},` +
    `${s(e.actorKind)},${s(e.actorId)},${s(e.actorRoles)},${s(e.action)},` +
    `${s(e.resourceType)},${s(e.resourceId)},${s(e.outcome)},${s(e.requestId)},` +
    // Inlined as JSON, not as a string: the stored text is already canonical JSON.
    `${e.details},${s(e.producer)}]`
  );
}

/** The canonical encoding of an event, as the UTF-8 bytes that are hashed. */
export function canonicalEventBytes(e: CanonicalEventFields): Buffer {
  return Buffer.from(canonicalEventText(e), "utf8");
}
