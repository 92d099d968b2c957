import type { DescMethod } from "@bufbuild/protobuf";
import { SERVICE_NAMES, type Permission, type ServiceName } from "@lcp/domain";
import { DomainError } from "./errors.js";
import type { Principal } from "./principal.js";

/**
 * Who may call one RPC:
 * - `permission`: an admin whose roles grant it;
 * - `services`: a control-plane service identity named in the list;
 * - `appliance`: an appliance identity — on its own deployment only, which the handler checks
 *   (`assertOwnDeployment`), because the deployment is in the request, not the procedure;
 * - `public`: anyone, also without credentials; `note` says what authorises it instead.
 */
export type Rule =
  | { readonly permission: Permission }
  | { readonly services: readonly ServiceName[] }
  | { readonly appliance: true }
  | { readonly public: true; readonly note?: string };

/** Every service may write its own audit events (through its outbox relay). */
const ALL_SERVICES: readonly ServiceName[] = SERVICE_NAMES;

/**
 * The policy table for the whole system, by procedure (`"pkg.Service/Method"`): docs/design.md §3.
 * Everything not listed is denied, and `policy-matrix.test.ts` proves every RPC in the
 * descriptors has an entry, so a new RPC is unreachable until someone decides who may call it.
 */
export const POLICY: Readonly<Record<string, Rule>> = {
  // licensing.v1.LicensingService — the admin API (screens: licensing/*).
  "licensing.v1.LicensingService/ListLicenses": { permission: "license.read" },
  "licensing.v1.LicensingService/GetLicense": { permission: "license.read" },
  "licensing.v1.LicensingService/IssueLicense": { permission: "license.issue" },
  "licensing.v1.LicensingService/ProvisionDeployment": { permission: "license.issue" },
  "licensing.v1.LicensingService/ListDeployments": { permission: "license.read" },
  "licensing.v1.LicensingService/GetDeployment": { permission: "license.read" },
  "licensing.v1.LicensingService/GetFleetSummary": { permission: "license.read" },
  "licensing.v1.LicensingService/RevokeLicense": { permission: "license.revoke" },
  // Rebinding moves a licence to other hardware: as dangerous as revoking it.
  "licensing.v1.LicensingService/RebindLicense": { permission: "license.revoke" },
  "licensing.v1.LicensingService/SetSubscriptionStatus": { permission: "subscription.manage" },
  // Air-gapping a box changes how long it may run unheard: as much an anti-theft lever as revoke.
  "licensing.v1.LicensingService/SetConnectivity": { permission: "license.revoke" },
  "licensing.v1.LicensingService/ListHeartbeats": { permission: "heartbeat.read" },
  "licensing.v1.LicensingService/SendDirective": { permission: "directive.send" },
  "licensing.v1.LicensingService/GetSettings": { permission: "license.read" },
  "licensing.v1.LicensingService/UpdateSettings": { permission: "settings.manage" },
  // Answering an air-gapped box's files is issuing by another road: the roles that may issue a
  // licence are the ones that carry files to sites, so a permission of its own would be granted
  // to exactly the same roles. The renewal is the anti-theft lever's road too: it locks a revoked box.
  "licensing.v1.LicensingService/RespondToActivation": { permission: "license.issue" },
  "licensing.v1.LicensingService/RespondToRenewal": { permission: "license.issue" },

  // licensing.v1.ApplianceService — what the boxes call.
  "licensing.v1.ApplianceService/Activate": {
    public: true,
    note: "authorised by the licence token in the handler",
  },
  "licensing.v1.ApplianceService/Heartbeat": { appliance: true },
  "licensing.v1.ApplianceService/SendHeartbeat": { appliance: true },

  // licensing.v1.ReconcileService — fleet-sweep drives reconciliation.
  "licensing.v1.ReconcileService/Reconcile": { services: ["fleet-sweep"] },
  "licensing.v1.ReconcileService/SplitFleet": { services: ["fleet-sweep"] },
  // Only the sweep_interval setting, so the scheduler follows it; not GetSettings, which would
  // need an admin permission and shows every setting.
  "licensing.v1.ReconcileService/GetSweepSchedule": { services: ["fleet-sweep"] },

  // signing.v1.SigningKeyService — key management is super_admin's (signing.manage).
  "signing.v1.SigningKeyService/ListKeys": { permission: "signing.manage" },
  "signing.v1.SigningKeyService/CreateKey": { permission: "signing.manage" },
  "signing.v1.SigningKeyService/RotateKeys": { permission: "signing.manage" },
  "signing.v1.SigningKeyService/RetireKey": { permission: "signing.manage" },
  "signing.v1.SigningKeyService/RevokeKey": { permission: "signing.manage" },
  // Verification keys are public by nature; appliances fetch them to verify offline.
  "signing.v1.SigningKeyService/GetJwks": { public: true },
  // Only licensing issues licences and leases; a compromised peer service cannot mint tokens.
  "signing.v1.SigningKeyService/Sign": { services: ["licensing"] },
  "signing.v1.SigningKeyService/IssueApplianceCertificate": { services: ["licensing"] },
  // Licensing needs the appliance CAs to trust appliance certificates on its listener.
  "signing.v1.SigningKeyService/GetApplianceTrustBundle": { services: ["licensing"] },
  "signing.v1.SigningKeyService/RotateApplianceCa": { permission: "signing.manage" },

  // audit.v1.AuditService — every service appends; reading the trail is audit.read.
  "audit.v1.AuditService/Append": { services: ALL_SERVICES },
  "audit.v1.AuditService/ListEvents": { permission: "audit.read" },
  "audit.v1.AuditService/CountEvents": { permission: "audit.read" },
  "audit.v1.AuditService/VerifyChain": { permission: "audit.read" },

  // fleet.v1.FleetSweepService — the health sweep.
  "fleet.v1.FleetSweepService/Sweep": { permission: "fleet.sweep" },
  "fleet.v1.FleetSweepService/GetSweep": { permission: "fleet.sweep" },
  "fleet.v1.FleetSweepService/ListSweeps": { permission: "fleet.sweep" },

  // ops.v1.OutboxService — each relaying service's quarantined audit events: part of reading the trail.
  "ops.v1.OutboxService/ListQuarantinedEvents": { permission: "audit.read" },

  // Infrastructure: probes and `grpcurl`/`buf curl` must work without credentials. Reflection
  // reveals only the contracts, which are not secret.
  "grpc.health.v1.Health/Check": { public: true },
  "grpc.health.v1.Health/Watch": { public: true },
  "grpc.health.v1.Health/List": { public: true },
  "grpc.reflection.v1.ServerReflection/ServerReflectionInfo": { public: true },
  "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": { public: true },
};

/** The policy key of a method: `"pkg.Service/Method"`. */
export function procedureOf(method: DescMethod): string {
  return `${method.parent.typeName}/${method.name}`;
}

/** An authorisation decision; a refusal says whether credentials were missing or insufficient. */
export type AuthzVerdict =
  | { readonly ok: true }
  | { readonly ok: false; readonly code: "unauthenticated" | "permission_denied"; readonly reason: string };

/**
 * Decides whether `principal` may call `procedure` under `table` (the system `POLICY` unless a
 * test passes its own). Deny by default: a procedure without a rule is refused to everyone.
 * An anonymous caller is told Unauthenticated (credentials would change the answer), an
 * identified one PermissionDenied.
 */
export function authorize(
  principal: Principal,
  procedure: string,
  table: Readonly<Record<string, Rule>> = POLICY,
): AuthzVerdict {
  const rule = Object.hasOwn(table, procedure) ? table[procedure] : undefined;
  if (rule && "public" in rule) return { ok: true };
  if (principal.kind === "anonymous") {
    return {
      ok: false,
      code: "unauthenticated",
      reason: principal.reason ?? `${procedure} requires credentials`,
    };
  }
  if (!rule) return deny(`${procedure} is not in the policy table`);
  if ("permission" in rule) {
    if (principal.kind === "admin" && principal.permissions.has(rule.permission)) return { ok: true };
    return deny(`${procedure} requires permission ${rule.permission}`);
  }
  if ("services" in rule) {
    if (principal.kind === "service" && rule.services.includes(principal.name)) return { ok: true };
    return deny(`${procedure} is internal to ${rule.services.join(", ")}`);
  }
  if (principal.kind === "appliance") return { ok: true };
  return deny(`${procedure} requires an appliance identity`);
}

function deny(reason: string): AuthzVerdict {
  return { ok: false, code: "permission_denied", reason };
}

/**
 * For `appliance` rules: the policy admits any appliance, the handler then proves the request
 * is about the caller's own deployment. Throws PermissionDenied (reason WRONG_DEPLOYMENT) when
 * the caller is not the appliance of `deploymentId`.
 */
export function assertOwnDeployment(principal: Principal, deploymentId: string): void {
  if (principal.kind === "appliance" && principal.deploymentId === deploymentId) return;
  throw new DomainError("WRONG_DEPLOYMENT", "an appliance may act only on its own deployment", {
    deploymentId,
  });
}
