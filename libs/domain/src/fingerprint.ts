/** The rules for a box's hardware fingerprint as presented on activation, heartbeat and rebind. */
import { refuse, type Verdict } from "./verdict.js";

/** The longest fingerprint accepted, in UTF-8 bytes. */
export const MAX_FINGERPRINT_BYTES = 512;

/**
 * The UTF-8 length of a string, counted by hand so the domain needs no runtime encoder. A lone
 * surrogate counts 3 bytes, as it encodes to U+FFFD.
 */
export function utf8ByteLength(s: string): number {
  let bytes = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const next = s.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4;
        i++;
      } else bytes += 3;
    } else bytes += 3;
  }
  return bytes;
}

/**
 * Checks a raw fingerprint: non-empty, not only whitespace, at most 512 bytes of UTF-8. The value
 * is returned unchanged (it is hashed as sent); the caller hashes it before it reaches the facts.
 */
export function validateFingerprint(raw: string): Verdict<{ fingerprint: string }> {
  if (raw.trim().length === 0) {
    return refuse("FINGERPRINT_INVALID", "fingerprint must not be empty", "fingerprint");
  }
  const bytes = utf8ByteLength(raw);
  if (bytes > MAX_FINGERPRINT_BYTES) {
    return refuse(
      "FINGERPRINT_INVALID",
      `fingerprint must be at most ${MAX_FINGERPRINT_BYTES} bytes of UTF-8 (got ${bytes})`,
      "fingerprint",
    );
  }
  return { ok: true, fingerprint: raw };
}
