/**
 * The event rules of docs/design.md §5 as pure functions: facts in, new facts (or a refusal) out.
 * Callers persist the new facts, then re-derive the state and record any transition.
 * Input checks come first, then the state rules in the order of {@link DOMAIN_CODES}.
 */
import { isLicenseExpired, type DeploymentFacts } from "./state.js";
import { plainTextProblem } from "./text.js";
import { refuse, type DomainCode, type Refusal, type Verdict } from "./verdict.js";

/** The longest audit reason accepted for revoke and rebind, in characters. */
export const MAX_REASON_LENGTH = 1024;

/** Checks an operator's reason (required for revoke and rebind, for the audit trail); returns it trimmed. */
export function validateReason(reason: string): Verdict<{ reason: string }> {
  const trimmed = reason.trim();
  if (trimmed.length === 0) return refuse("REASON_REQUIRED", "a reason is required for the audit trail", "reason");
  if (trimmed.length > MAX_REASON_LENGTH) {
    return refuse("INVALID_ARGUMENT", `reason must be at most ${MAX_REASON_LENGTH} characters`, "reason");
  }
  // A reason may run over several lines (see PlainTextOptions.multiline); nothing else unprintable,
  // checked before trimming so an unprintable character at either end is refused, not dropped.
  const problem = plainTextProblem("reason", reason, { multiline: true });
  if (problem) return refuse("INVALID_ARGUMENT", problem, "reason");
  return { ok: true, reason: trimmed };
}

// Shared by activate and heartbeat: a box may do nothing on a revoked or expired licence.
function licenseUsable(facts: DeploymentFacts, now: number): Refusal | null {
  // Revocation outranks expiry: the revoked box must hear REVOKED even once its term has ended.
  if (facts.licenseRevoked) return refuse("LICENSE_REVOKED", "the licence has been revoked");
  if (facts.licenseExpiresAt === null) return refuse("NOT_FOUND", "no licence has been issued for this deployment");
  if (isLicenseExpired(facts, now)) return refuse("LICENSE_EXPIRED", "the licence term has ended");
  return null;
}

/** A successful activation: the new facts, and whether it was the bound box activating again. */
export type ActivateResult = Verdict<{ facts: DeploymentFacts; reinstall: boolean }>;

/**
 * A box activates the licence with its fingerprint hash. Refused for ever once revoked; refused
 * when expired or bound to another box, and, while unbound, to a box a rebind moved it off
 * (`box.movedOffByRebind`). The bound box may activate again (a reinstall), keeping
 * its first activation time. Either way the box was seen now (server time).
 */
export function activate(
  facts: DeploymentFacts,
  fingerprintHash: string,
  now: number,
  box: { movedOffByRebind?: boolean } = {},
): ActivateResult {
  const unusable = licenseUsable(facts, now);
  if (unusable) return unusable;
  const bound = facts.boundFingerprintHash;
  // One box per licence: moving to other hardware takes an operator's rebind.
  if (bound !== null && bound !== fingerprintHash) {
    return refuse("FINGERPRINT_MISMATCH", "the licence is bound to another box; rebind it to move it");
  }
  // An unbind lets the next NEW box bind. The box it moved the licence off still holds the token:
  // it must not take the licence straight back; a rebind naming it does.
  if (bound === null && box.movedOffByRebind === true) {
    return refuse("FINGERPRINT_MISMATCH", "a rebind moved the licence off this box; rebind it to this box to move it back");
  }
  // A rebind may pre-bind the new box's fingerprint with activatedAt cleared: its first
  // activation is then a first activation, not a reinstall.
  const reinstall = bound === fingerprintHash && facts.activatedAt !== null;
  return {
    ok: true,
    reinstall,
    facts: {
      ...facts,
      boundFingerprintHash: fingerprintHash,
      activatedAt: facts.activatedAt ?? now,
      lastSeenAt: now,
    },
  };
}

/**
 * A box's heartbeat. Accepted only from the bound box on a live licence; it refreshes lastSeenAt
 * to `now` (server time, never the box's clock), which brings GRACE and LOCKED(OFFLINE) back to
 * ACTIVE. See {@link heartbeatRefusalLocksBox} for which refusals tell the box to lock.
 */
export function heartbeat(
  facts: DeploymentFacts,
  fingerprintHash: string,
  now: number,
): Verdict<{ facts: DeploymentFacts }> {
  const unusable = licenseUsable(facts, now);
  if (unusable) return unusable;
  // Checked before NOT_ACTIVATED: after a rebind that pre-binds the new box, the old box's beat
  // is a mismatch (and it is told to lock) even though the new box has not activated yet.
  if (facts.boundFingerprintHash !== null && facts.boundFingerprintHash !== fingerprintHash) {
    return refuse("FINGERPRINT_MISMATCH", "this box is not the one the licence is bound to");
  }
  if (facts.activatedAt === null || facts.boundFingerprintHash === null) {
    return refuse("NOT_ACTIVATED", "the licence has not been activated by this box");
  }
  return { ok: true, facts: { ...facts, lastSeenAt: now } };
}

const LOCKING_HEARTBEAT_REFUSALS: ReadonlySet<DomainCode> = new Set<DomainCode>([
  "LICENSE_REVOKED",
  "LICENSE_EXPIRED",
  "FINGERPRINT_MISMATCH",
  "NOT_ACTIVATED",
  "NOT_FOUND",
]);

/**
 * Whether a heartbeat refusal means the box must be told to LOCK. Every state refusal does: a box
 * beating on a revoked, expired or rebound licence (mismatch, or unbound after a rebind) may not run.
 */
export function heartbeatRefusalLocksBox(code: DomainCode): boolean {
  return LOCKING_HEARTBEAT_REFUSALS.has(code);
}

/** The subscription was marked invalid or restored; `changed` is false when it already was so. */
export function setSubscription(
  facts: DeploymentFacts,
  valid: boolean,
): Verdict<{ facts: DeploymentFacts; changed: boolean }> {
  return { ok: true, changed: facts.subscriptionValid !== valid, facts: { ...facts, subscriptionValid: valid } };
}

/**
 * An operator switches the deployment between ONLINE and AIR_GAPPED (docs/design.md §15);
 * `changed` is false when it already was so. Nothing else moves: the binding, the last seen time
 * and the licence (its lease seq included) carry on, and the state is re-derived with the new
 * measure of silence (an air-gapped box silent past the grace window locks once switched online).
 */
export function setConnectivity(
  facts: DeploymentFacts,
  airGapped: boolean,
): Verdict<{ facts: DeploymentFacts; changed: boolean }> {
  return { ok: true, changed: facts.airGapped !== airGapped, facts: { ...facts, airGapped } };
}

/**
 * An operator revokes the licence: it locks the deployment and denies every future activation.
 * The reason is required; revoking twice is refused (ALREADY_REVOKED) so the audit trail records
 * one revocation. Returns the time and trimmed reason for the caller to store.
 */
export function revoke(
  facts: DeploymentFacts,
  now: number,
  reason: string,
): Verdict<{ facts: DeploymentFacts; revokedAt: number; reason: string }> {
  const r = validateReason(reason);
  if (!r.ok) return r;
  if (facts.licenseExpiresAt === null) return refuse("NOT_FOUND", "no licence has been issued for this deployment");
  if (facts.licenseRevoked) return refuse("ALREADY_REVOKED", "the licence is already revoked");
  // The bound fingerprint is kept: it says which box was revoked.
  return { ok: true, revokedAt: now, reason: r.reason, facts: { ...facts, licenseRevoked: true } };
}

/**
 * An operator moves the licence to a new box (e.g. replacement hardware). `newFingerprintHash`
 * binds that box directly (it then activates with it); null unbinds so the next box to activate
 * binds. Either way the licence awaits activation (activatedAt and lastSeenAt cleared, so the
 * deployment is PENDING) and the old box is refused from its next heartbeat on. Returns the
 * previously bound hash so the caller can revoke that box's certificate.
 */
export function rebind(
  facts: DeploymentFacts,
  newFingerprintHash: string | null,
  reason: string,
): Verdict<{ facts: DeploymentFacts; previousFingerprintHash: string | null; reason: string }> {
  const r = validateReason(reason);
  if (!r.ok) return r;
  if (newFingerprintHash !== null && newFingerprintHash.length === 0) {
    return refuse("FINGERPRINT_INVALID", "the new fingerprint must not be empty (unbind with none)", "new_fingerprint");
  }
  if (facts.licenseExpiresAt === null) return refuse("NOT_FOUND", "no licence has been issued for this deployment");
  // A revoked licence stays with the box it was revoked on: rebinding must not resurrect it.
  if (facts.licenseRevoked) return refuse("LICENSE_REVOKED", "a revoked licence cannot be rebound");
  if (newFingerprintHash === facts.boundFingerprintHash) {
    return refuse(
      "SAME_FINGERPRINT",
      newFingerprintHash === null ? "the licence is already unbound" : "the licence is already bound to this fingerprint",
    );
  }
  return {
    ok: true,
    reason: r.reason,
    previousFingerprintHash: facts.boundFingerprintHash,
    facts: { ...facts, boundFingerprintHash: newFingerprintHash, activatedAt: null, lastSeenAt: null },
  };
}

/**
 * A new licence term for the deployment (issue at provisioning, or a renewal that supersedes the
 * current licence). Refused on a revoked licence: revocation is for ever, so a new licence means
 * a new deployment record. The binding is kept so the running box carries on.
 */
export function issueLicense(
  facts: DeploymentFacts,
  expiresAt: number,
  now: number,
): Verdict<{ facts: DeploymentFacts }> {
  if (!Number.isFinite(expiresAt) || expiresAt <= now) {
    return refuse("INVALID_ARGUMENT", "the licence term must end in the future", "expire_time");
  }
  if (facts.licenseRevoked) return refuse("LICENSE_REVOKED", "the deployment's licence has been revoked");
  return { ok: true, facts: { ...facts, licenseExpiresAt: expiresAt } };
}
