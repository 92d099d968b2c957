/** The audit action names of docs/design.md §7: the one list producers and the audit service share. */

/** Every audit action a service may record. */
export const AUDIT_ACTIONS = [
  "license.issue",
  "license.activate",
  "license.renew",
  "license.revoke",
  "license.rebind",
  "license.expire",
  "deployment.provision",
  "deployment.suspend",
  "deployment.reactivate",
  "deployment.lock",
  "deployment.offline",
  "deployment.online",
  // A deployment switched between ONLINE and AIR_GAPPED (SetConnectivity).
  "deployment.connectivity",
  "subscription.update",
  "settings.update",
  "directive.send",
  "signing.key.create",
  "signing.key.activate",
  "signing.key.retire",
  "signing.key.revoke",
  "signing.ca.rotate",
  // Every stored private key moved onto a new key-encryption key (npm run rotate-kek).
  "signing.kek.rotate",
  "appliance.certificate.issue",
  "fleet.sweep",
  "authz.denied",
  // Raised by an outbox relay when the audit service refused one of its events as invalid.
  "audit.event_quarantined",
] as const;

/** An audit action name, e.g. `license.revoke`. */
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

/** Whether a string names a known audit action (e.g. validating an `Append` request or a filter). */
export function isAuditAction(value: string): value is AuditAction {
  return (AUDIT_ACTIONS as readonly string[]).includes(value);
}
