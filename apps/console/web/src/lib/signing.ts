/**
 * The Signing keys screen's rules in words: key states, which key may be retired or revoked
 * (the signing-keys lifecycle, docs/design.md §6), the JWKS for reading, and how long a
 * rotated appliance CA stays trusted.
 */
import { DAY_MS } from "@lcp/domain";
import { KeyState } from "@lcp/proto/signing/v1/signing_key_service_pb";

/** Key states in words. */
export const KEY_STATE_LABELS: Readonly<Record<KeyState, string>> = {
  [KeyState.UNSPECIFIED]: "Unknown",
  [KeyState.NEXT]: "Next",
  [KeyState.ACTIVE]: "Active",
  [KeyState.RETIRED]: "Retired",
  [KeyState.REVOKED]: "Revoked",
};

/** What each state means, for the badge's description. */
export const KEY_STATE_MEANINGS: Readonly<Record<KeyState, string>> = {
  [KeyState.UNSPECIFIED]: "The service reported a state this console does not know.",
  [KeyState.NEXT]: "Published in the JWKS, not signing yet; the next rotation makes it active.",
  [KeyState.ACTIVE]: "Signs every new licence and lease.",
  [KeyState.RETIRED]: "No longer signs; still verifies what it signed.",
  [KeyState.REVOKED]: "Removed from the JWKS: nothing it signed verifies any more.",
};

/** A key state's label, "Unknown (n)" for a state this build does not know. */
export function keyStateLabel(state: KeyState): string {
  return KEY_STATE_LABELS[state] ?? `Unknown (${String(state)})`;
}

/**
 * Why a key may not be retired, or null when it may: only a NEXT key retires by hand; the
 * ACTIVE key retires by rotation (which activates its successor in the same step); a revoked
 * key never comes back into the JWKS.
 */
export function retireBlockedReason(state: KeyState): string | null {
  switch (state) {
    case KeyState.NEXT:
      return null;
    case KeyState.ACTIVE:
      return "The active key is retired by Rotate keys, which activates its successor in the same step.";
    case KeyState.RETIRED:
      return "This key is already retired.";
    case KeyState.REVOKED:
      return "A revoked key cannot be retired: that would put it back in the JWKS.";
    default:
      return "This key's state is not known.";
  }
}

/** Why a key may not be revoked, or null when it may (any key that is not revoked already). */
export function revokeBlockedReason(state: KeyState): string | null {
  return state === KeyState.REVOKED ? "This key is already revoked." : null;
}

/** A JSON document indented for reading; the text as it came when it is not JSON. */
export function prettyJson(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

/**
 * How long signing-keys issues appliance certificates for (its default validity; licensing
 * asks for no other).
 */
export const APPLIANCE_CERTIFICATE_VALIDITY_MS = 30 * DAY_MS;

/**
 * The latest moment a CA rotated out at `rotatedAtMs` can still be trusted: the trust bundle
 * keeps it while certificates it issued are valid, and it issued none after the rotation, so
 * at most one certificate validity later, and never after its own expiry.
 */
export function rotatedCaTrustedUntil(rotatedAtMs: number, caNotAfterMs: number, validityMs = APPLIANCE_CERTIFICATE_VALIDITY_MS): number {
  return Math.min(rotatedAtMs + validityMs, caNotAfterMs);
}
