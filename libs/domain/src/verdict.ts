/**
 * Domain verdicts: rules answer with a value, never by throwing. A refusal carries a string code
 * (mapped to a Connect code in one place, `libs/rpc/src/errors.ts`) and a message fit for the caller.
 */

/**
 * Every code a domain rule can refuse with. The first group is listed in the order that is the
 * policy when several apply (revocation outranks expiry, which outranks a fingerprint mismatch …);
 * the second group are input errors, checked before any state rule.
 */
export const DOMAIN_CODES = [
  "LICENSE_REVOKED",
  "LICENSE_EXPIRED",
  "LICENSE_NOT_YET_VALID",
  "FINGERPRINT_MISMATCH",
  "SUBSCRIPTION_INVALID",
  "NOT_ACTIVATED",
  "ALREADY_REVOKED",
  "SAME_FINGERPRINT",
  // Input errors.
  "FINGERPRINT_INVALID",
  "REASON_REQUIRED",
  "SETTINGS_OUT_OF_RANGE",
  "NOT_FOUND",
  "INVALID_ARGUMENT",
  "CONFLICT",
] as const;

/** A domain refusal code; see {@link DOMAIN_CODES} for the order that is the policy. */
export type DomainCode = (typeof DOMAIN_CODES)[number];

/** Whether a string is a known domain code (e.g. an ErrorInfo reason read back by a client). */
export function isDomainCode(value: string): value is DomainCode {
  return (DOMAIN_CODES as readonly string[]).includes(value);
}

/** A rule said no: the code says why for machines, the message for people. */
export interface Refusal {
  readonly ok: false;
  readonly code: DomainCode;
  readonly message: string;
  /** The offending input field (snake_case, as in the proto), when one is to blame. */
  readonly field?: string;
}

/** A rule's answer: `{ ok: true, ...payload }` or a {@link Refusal}. */
export type Verdict<T extends object = object> = ({ readonly ok: true } & T) | Refusal;

/** Builds a refusal; `field` names the offending input, if any. */
export function refuse(code: DomainCode, message: string, field?: string): Refusal {
  return field === undefined ? { ok: false, code, message } : { ok: false, code, message, field };
}
