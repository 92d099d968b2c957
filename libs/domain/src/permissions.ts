/**
 * Roles → permissions: the one table in code, and the only place roles are named
 * (docs/design.md §3). Everything a role does not list is denied.
 */

/** Every permission an admin token can carry through its roles. */
export const PERMISSIONS = [
  "license.read",
  "license.issue",
  "license.revoke",
  "subscription.manage",
  "heartbeat.read",
  "directive.send",
  "audit.read",
  "fleet.sweep",
  "settings.manage",
  "signing.manage",
] as const;

/** A permission an admin role can grant, e.g. `license.revoke`. */
export type Permission = (typeof PERMISSIONS)[number];

const SUPPORT: readonly Permission[] = [
  "license.read",
  "license.issue",
  "license.revoke",
  "subscription.manage",
  "heartbeat.read",
  "directive.send",
  "audit.read",
  "fleet.sweep",
];

/** The admin roles and what each may do. */
export const ROLE_PERMISSIONS = {
  onboarding: ["license.read", "license.issue"],
  support: SUPPORT,
  super_admin: [...SUPPORT, "settings.manage", "signing.manage"],
  auditor: ["license.read", "heartbeat.read", "audit.read"],
} as const satisfies Record<string, readonly Permission[]>;

/** An admin role name (`onboarding`, `support`, `super_admin`, `auditor`). */
export type Role = keyof typeof ROLE_PERMISSIONS;

/** The known role names, for validating tokens and CLI input. */
export const ROLES = Object.keys(ROLE_PERMISSIONS) as Role[];

/** Whether a string names a known role. Unknown roles in a token grant nothing. */
export function isRole(value: string): value is Role {
  return Object.hasOwn(ROLE_PERMISSIONS, value);
}

/** The union of the permissions of the given roles; unknown role names contribute nothing. */
export function permissionsFor(roles: readonly string[]): ReadonlySet<Permission> {
  const granted = new Set<Permission>();
  for (const role of roles) {
    if (isRole(role)) for (const p of ROLE_PERMISSIONS[role]) granted.add(p);
  }
  return granted;
}

/**
 * The control-plane services as they name themselves in their SPIFFE ids
 * (`spiffe://<trust-domain>/service/<name>`).
 */
export const SERVICE_NAMES = ["licensing", "signing-keys", "audit", "fleet-sweep"] as const;

/** A control-plane service name as it appears in its SPIFFE id. */
export type ServiceName = (typeof SERVICE_NAMES)[number];

/** Whether a string names a control-plane service. */
export function isServiceName(value: string): value is ServiceName {
  return (SERVICE_NAMES as readonly string[]).includes(value);
}
