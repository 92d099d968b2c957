/**
 * The field checks every licensing API shares (LicensingService, ApplianceService and the
 * heartbeat alike): ids, plain text, fingerprints, list pages. Refusals are InvalidArgument
 * DomainErrors naming the field (FINGERPRINT_INVALID for a fingerprint).
 */
import { createHash } from "node:crypto";
import { plainTextProblem, validateFingerprint, type PlainTextOptions } from "@lcp/domain";
import { DomainError } from "@lcp/rpc";

/** Default and largest page of the list RPCs (the proto's contract: 1 to 500, 0 → 50). */
export const LIST_PAGE = { default: 50, max: 500 } as const;

/** The longest free-text reason accepted (revoke, rebind, directives). */
export const MAX_REASON_LENGTH = 1024;

/** A UUID (licensing's ids are UUIDv7), any case. */
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** An InvalidArgument refusal naming the field. */
export function invalid(field: string, message: string): DomainError {
  return new DomainError("INVALID_ARGUMENT", message, { field });
}

/** Checks an id field: required and a UUID (ids are UUIDv7, made by licensing). Returns it lowercased. */
export function requireId(value: string, field: string): string {
  if (value === "") throw invalid(field, `${field} is required`);
  if (!UUID.test(value)) throw invalid(field, `${field} must be a UUID (got ${JSON.stringify(value.slice(0, 64))})`);
  return value.toLowerCase();
}

/**
 * Refuses a text field holding anything but ordinary printable text (the shared rule of
 * `@lcp/domain`'s text.ts), as InvalidArgument naming the field. The whole value is checked,
 * before any trimming, so nothing unprintable is quietly dropped or kept.
 */
export function requirePlainText(value: string, field: string, options?: PlainTextOptions): string {
  const problem = plainTextProblem(field, value, options);
  if (problem) throw invalid(field, problem);
  return value;
}

/** SHA-256 (hex) of a fingerprint as sent: the raw value is never stored. */
export function fingerprintHash(fingerprint: string): string {
  return createHash("sha256").update(fingerprint, "utf8").digest("hex");
}

/** Validates and hashes a fingerprint (1 to 512 bytes); `field` names it in the refusal. */
export function requireFingerprintHash(fingerprint: string, field: string): string {
  const verdict = validateFingerprint(fingerprint);
  if (!verdict.ok) throw new DomainError(verdict.code, verdict.message.replace(/^fingerprint/, field), { field });
  return fingerprintHash(verdict.fingerprint);
}
