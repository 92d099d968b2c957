/**
 * Reads an air-gapped box's request file (docs/design.md §15; the format is libs/tokens
 * offline-files.ts) for the operator to see what they are about to answer. Nothing here is
 * trusted or verified: the signature, the licence and the box's key are licensing's to check
 * when the file is answered. The file came off a box on a USB stick, so every value is bounded
 * and reduced to plain printable text here, in one place, before any screen shows it.
 */
import { decodeToken } from "./jwt.js";

/** The largest request file accepted, in bytes: the limit licensing applies (MAX_OFFLINE_FILE_BYTES). */
export const MAX_REQUEST_FILE_BYTES = 16 * 1024;

/** The two kinds of request a box writes, by their JWS `typ`. */
export const REQUEST_FILE_TYPES = {
  activation: "activation-request+jwt",
  renewal: "renewal-request+jwt",
} as const;

/** A request kind: an activation (first contact) or a renewal (next lease). */
export type RequestKind = keyof typeof REQUEST_FILE_TYPES;

/** The `typ` of the files licensing writes, to tell an operator they picked the answer, not the request. */
const RESPONSE_TYPES: Readonly<Record<string, string>> = {
  "activation-response+jwt": "an activation response",
  "renewal-response+jwt": "a renewal response",
  "license+jwt": "a licence token",
  "lease+jwt": "a lease token",
};

/** Limits on what is shown: ids, versions and counter names are short in any honest file. */
const MAX_SHOWN_CHARS = 128;
const MAX_USAGE_SHOWN = 32;
const MAX_COUNTER_NAME_CHARS = 64;
// Dates a JS Date can hold and a person can read: 1970 to 9999.
const MAX_EPOCH_SECONDS = 253_402_300_799;

/** One usage counter as the box reported it, both sides plain text. */
export interface UsageCounter {
  readonly name: string;
  /** The count, or a note that the value is not a count. */
  readonly value: string;
}

/** What a request file says, every value bounded plain text (null when absent or unreadable). */
export interface RequestFileView {
  readonly ok: true;
  readonly kind: RequestKind;
  readonly licenseId: string | null;
  /** Renewal only: an activation learns its deployment from the licence token. */
  readonly deploymentId: string | null;
  /** The box's clock when it wrote the file; informational, the box's clock may be wrong. */
  readonly boxTime: Date | null;
  /** Renewal only: the highest lease seq the box holds. */
  readonly leaseSeq: string | null;
  /** Renewal only: what the box counted since its last renewal, at most 32 entries. */
  readonly usage: readonly UsageCounter[];
  /** Set when the box reported more counters than are shown. */
  readonly usageTruncated: boolean;
  /** SHA-256 of the box's fingerprint (the raw fingerprint never leaves the box). */
  readonly fingerprintHash: string | null;
  readonly agentVersion: string | null;
}

/** Why a text is not something to answer: a message for the operator, with the field it concerns. */
export interface RequestFileProblem {
  readonly ok: false;
  readonly code: "EMPTY" | "TOO_LARGE" | "NOT_A_REQUEST" | "WRONG_KIND";
  readonly message: string;
}

/** The outcome of reading a request file. */
export type RequestFileReading = RequestFileView | RequestFileProblem;

/** The UTF-8 size of a text, in bytes. */
export function utf8Bytes(text: string): number {
  return new TextEncoder().encode(text).length;
}

/**
 * A value as text fit to show: strings only, control and format characters (bidi overrides
 * included) replaced, cut at `max` characters with an ellipsis. Anything else is null.
 */
export function plainText(value: unknown, max = MAX_SHOWN_CHARS): string | null {
  if (typeof value !== "string") return null;
  // Cut first so a huge string costs no more than its first `max` characters.
  const head = value.slice(0, max + 1);
  const clean = head.replace(/[\p{Cc}\p{Cf}\p{Co}\p{Cs}\u2028\u2029]/gu, "\uFFFD").trim();
  if (clean === "") return null;
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}

function count(value: unknown): string | null {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0 ? String(value) : null;
}

function boxTime(value: unknown): Date | null {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || value > MAX_EPOCH_SECONDS) return null;
  return new Date(Math.floor(value) * 1000);
}

function usageOf(value: unknown): { usage: UsageCounter[]; truncated: boolean } {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return { usage: [], truncated: false };
  const usage: UsageCounter[] = [];
  let truncated = false;
  // Stops at the first counter past the limit: the rest are never read.
  for (const name in value) {
    if (!Object.prototype.hasOwnProperty.call(value, name)) continue;
    if (usage.length === MAX_USAGE_SHOWN) {
      truncated = true;
      break;
    }
    const shown = plainText(name, MAX_COUNTER_NAME_CHARS) ?? "(unnamed)";
    usage.push({ name: shown, value: count((value as Record<string, unknown>)[name]) ?? "not a count" });
  }
  return { usage, truncated };
}

const NOT_A_REQUEST = "This is not a request file: a request file is one line of text (a signed JWS) written by an air-gapped box.";

/**
 * Reads a request file for display; see the module comment. Refuses text over
 * {@link MAX_REQUEST_FILE_BYTES} before looking inside it.
 */
export function readRequestFile(text: string): RequestFileReading {
  if (text.length > MAX_REQUEST_FILE_BYTES * 4 || utf8Bytes(text) > MAX_REQUEST_FILE_BYTES) {
    return { ok: false, code: "TOO_LARGE", message: `The file is larger than ${MAX_REQUEST_FILE_BYTES / 1024} KiB: a request file is a few KiB. Check that you picked the file the box wrote.` };
  }
  const trimmed = text.trim();
  if (trimmed === "") return { ok: false, code: "EMPTY", message: "Pick the request file the box wrote, or paste its text." };
  const decoded = decodeToken(trimmed);
  if (!decoded.ok) return { ok: false, code: "NOT_A_REQUEST", message: NOT_A_REQUEST };
  const typ = decoded.header.typ;
  const kind = (Object.keys(REQUEST_FILE_TYPES) as RequestKind[]).find((k) => REQUEST_FILE_TYPES[k] === typ);
  if (!kind) {
    const other = typeof typ === "string" ? RESPONSE_TYPES[typ] : undefined;
    return other
      ? { ok: false, code: "WRONG_KIND", message: `This is ${other}, not a request: pick the file the box wrote.` }
      : { ok: false, code: "NOT_A_REQUEST", message: NOT_A_REQUEST };
  }
  const c = decoded.claims;
  const renewal = kind === "renewal";
  const { usage, truncated } = renewal ? usageOf(c.use) : { usage: [], truncated: false };
  return {
    ok: true,
    kind,
    licenseId: plainText(c.lic),
    deploymentId: renewal ? plainText(c.dep) : null,
    boxTime: boxTime(c.iat),
    leaseSeq: renewal ? count(c.seq) : null,
    usage,
    usageTruncated: truncated,
    fingerprintHash: plainText(c.fph, 64),
    agentVersion: plainText(c.agv),
  };
}

/**
 * The name to save a response file under: `<license-id>-<kind>-response.jwt`, the id reduced to
 * the characters every file system accepts (it comes from the answer, which echoes the request).
 */
export function responseFileName(licenseId: string, kind: RequestKind): string {
  const safe = licenseId.replace(/[^A-Za-z0-9._-]/g, "_").replace(/^[.]+/, "").slice(0, 64);
  return `${safe || "license"}-${kind}-response.jwt`;
}
