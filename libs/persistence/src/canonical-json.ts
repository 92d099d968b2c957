/**
 * Canonical JSON: the one text of an audit event's details that both the producers' outbox relay
 * (which sends it as `details_json`) and the audit service (which encodes a `Struct` with it)
 * write, so the same details hash the same whichever form carried them (apps/audit README
 * "Hash chain").
 */

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
