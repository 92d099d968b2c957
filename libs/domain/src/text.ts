/**
 * What counts as ordinary text in a request field: the one rule every service's validators
 * apply to names, customers, reasons, filters and other free text before anything is stored,
 * logged or sent on. Pure; no I/O.
 */

/** A character a text field may not hold, with where it is, for a refusal that names it. */
export interface ForbiddenCharacter {
  /** UTF-16 index in the text. */
  readonly index: number;
  /** `U+0000`-style code point (of the lone surrogate itself, for one). */
  readonly codePoint: string;
  /** What kind of character it is, for the message. */
  readonly kind: "control character" | "lone surrogate" | "line or paragraph separator" | "bidirectional control" | "noncharacter";
}

/** Options of {@link findForbiddenCharacter}. */
export interface PlainTextOptions {
  /**
   * Allow line feed and tab. Only multi-line free text (an operator's reason) wants them: a
   * pasted explanation keeps its lines, and every place a reason goes (JSON logs, the audit
   * chain, protobuf) escapes them. Carriage return stays refused even then, as it rewrites what
   * a terminal or a plain-text log viewer shows.
   */
  multiline?: boolean;
}

/**
 * The first character of `text` (from index `from`) that is not ordinary printable text, or
 * undefined when there is none. Refused everywhere:
 * - C0 controls (U+0000–U+001F, NUL above all: PostgreSQL text cannot hold it, C strings end at
 *   it), DEL and the C1 controls (U+007F–U+009F);
 * - lone surrogates (not Unicode: they cannot be encoded as UTF-8 and break at every boundary);
 * - U+2028/U+2029, which split a line for some readers and not for others;
 * - bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069), which make
 *   a name display as something other than what it is;
 * - the noncharacters U+FFFE and U+FFFF.
 */
export function findForbiddenCharacter(text: string, options: PlainTextOptions = {}, from = 0): ForbiddenCharacter | undefined {
  for (let index = from; index < text.length; index++) {
    const unit = text.charCodeAt(index);
    // Fast path: printable ASCII is by far the common case.
    if (unit >= 0x20 && unit < 0x7f) continue;
    const at = (kind: ForbiddenCharacter["kind"]): ForbiddenCharacter => ({ index, codePoint: formatCodePoint(unit), kind });
    if (unit < 0x20) {
      if (options.multiline && (unit === 0x0a || unit === 0x09)) continue;
      return at("control character");
    }
    if (unit <= 0x9f) return at("control character");
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = text.charCodeAt(index + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        index++;
        continue;
      }
      return at("lone surrogate");
    }
    if (unit >= 0xdc00 && unit <= 0xdfff) return at("lone surrogate");
    if (unit === 0x2028 || unit === 0x2029) return at("line or paragraph separator");
    if ((unit >= 0x202a && unit <= 0x202e) || (unit >= 0x2066 && unit <= 0x2069)) return at("bidirectional control");
    if (unit === 0xfffe || unit === 0xffff) return at("noncharacter");
  }
  return undefined;
}

/**
 * The refusal message for a field holding a forbidden character, or undefined when the text is
 * plain: `name must not contain control characters (U+0000 at position 4)`. The character
 * itself is never echoed back.
 */
export function plainTextProblem(field: string, text: string, options: PlainTextOptions = {}): string | undefined {
  const found = findForbiddenCharacter(text, options);
  if (!found) return undefined;
  return `${field} must be plain text: it holds a ${found.kind} (${found.codePoint} at position ${found.index})`;
}

/**
 * `text` with every character {@link findForbiddenCharacter} refuses written as its visible
 * `\uXXXX` escape (lowercase hex, one per UTF-16 unit): where text that was never validated must
 * still be kept — the audit trail's record of a refused request — it shows what was sent without
 * carrying it. Plain text comes back as it is, and an escaped text escapes to itself.
 */
export function escapeForbiddenCharacters(text: string, options: PlainTextOptions = {}): string {
  let out = "";
  let from = 0;
  for (let found = findForbiddenCharacter(text, options); found; found = findForbiddenCharacter(text, options, from)) {
    out += `${text.slice(from, found.index)}\\u${text.charCodeAt(found.index).toString(16).padStart(4, "0")}`;
    from = found.index + 1;
  }
  return from === 0 ? text : out + text.slice(from);
}

function formatCodePoint(unit: number): string {
  return `U+${unit.toString(16).toUpperCase().padStart(4, "0")}`;
}
