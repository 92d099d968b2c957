/**
 * Domain ↔ proto: the one place licensing's rows and domain values become `licensing.v1`
 * messages and enums, and back. Handlers never build messages field by field.
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { DerivedState, Settings } from "@lcp/domain";
import { ApplianceSettingsSchema, type ApplianceSettings } from "@lcp/proto/licensing/v1/appliance_service_pb";
import { ApplianceCertificateSchema, type ApplianceCertificate } from "@lcp/proto/licensing/v1/licensing_service_pb";
import {
  Connectivity,
  DeploymentKind,
  DeploymentSchema,
  DirectiveSchema,
  LicenseSchema,
  LicenseStatus,
  SettingsSchema,
  SubscriptionStatus,
  type Deployment,
  type Directive,
  type License,
  type Settings as ProtoSettings,
} from "@lcp/proto/licensing/v1/types_pb";
import { directiveTypeToProto, lockReasonToProto, stateToProto, type Principal } from "@lcp/rpc";
import type { CertificateRow, DeploymentRow, DirectiveRow, LicenseRow, SettingsRow } from "./storage/entities.js";
import { settingsOf, type ConnectivityName } from "./storage/repository.js";

/** How a deployment kind is stored. */
export type KindName = "ON_PREM" | "CLOUD";
/** How a subscription status is stored. */
export type SubscriptionName = "VALID" | "INVALID";
/** A licence's status, derived from its timestamps (never stored). */
export type LicenseStatusName = "ISSUED" | "ACTIVATED" | "REVOKED" | "EXPIRED" | "SUPERSEDED";
const KINDS: Record<KindName, DeploymentKind> = { ON_PREM: DeploymentKind.ON_PREM, CLOUD: DeploymentKind.CLOUD };
const SUBSCRIPTIONS: Record<SubscriptionName, SubscriptionStatus> = {
  VALID: SubscriptionStatus.VALID,
  INVALID: SubscriptionStatus.INVALID,
};
const CONNECTIVITIES: Record<ConnectivityName, Connectivity> = {
  ONLINE: Connectivity.ONLINE,
  AIR_GAPPED: Connectivity.AIR_GAPPED,
};
const LICENSE_STATUSES: Record<LicenseStatusName, LicenseStatus> = {
  ISSUED: LicenseStatus.ISSUED,
  ACTIVATED: LicenseStatus.ACTIVATED,
  REVOKED: LicenseStatus.REVOKED,
  EXPIRED: LicenseStatus.EXPIRED,
  SUPERSEDED: LicenseStatus.SUPERSEDED,
};

function reverse<K extends string, V extends number>(table: Record<K, V>): Map<number, K> {
  return new Map(Object.entries(table).map(([k, v]) => [v as number, k as K]));
}
const KIND_NAMES = reverse(KINDS);
const SUBSCRIPTION_NAMES = reverse(SUBSCRIPTIONS);
const LICENSE_STATUS_NAMES = reverse(LICENSE_STATUSES);
const CONNECTIVITY_NAMES = reverse(CONNECTIVITIES);

/** The stored kind of a proto enum value; undefined for UNSPECIFIED and unknown numbers. */
export function kindFromProto(value: number): KindName | undefined {
  return KIND_NAMES.get(value);
}
/** The stored subscription status of a proto enum value; undefined for UNSPECIFIED and unknown numbers. */
export function subscriptionFromProto(value: number): SubscriptionName | undefined {
  return SUBSCRIPTION_NAMES.get(value);
}
/**
 * The stored connectivity of a proto enum value: UNSPECIFIED reads as ONLINE (the proto's
 * contract); undefined for unknown numbers.
 */
export function connectivityFromProto(value: number): ConnectivityName | undefined {
  return value === Connectivity.UNSPECIFIED ? "ONLINE" : CONNECTIVITY_NAMES.get(value);
}
/** The licence status of a proto enum value; undefined for UNSPECIFIED and unknown numbers. */
export function licenseStatusFromProto(value: number): LicenseStatusName | undefined {
  return LICENSE_STATUS_NAMES.get(value);
}

/**
 * A licence's status at `now`, from its timestamps. Revocation outranks everything (a revoked
 * licence never comes back), then supersession, then the end of its term.
 */
export function licenseStatusOf(row: LicenseRow, now: Date): LicenseStatusName {
  if (row.revokedAt) return "REVOKED";
  if (row.supersededAt) return "SUPERSEDED";
  if (now.getTime() >= row.expiresAt.getTime()) return "EXPIRED";
  if (row.fingerprintHash && row.activatedAt) return "ACTIVATED";
  return "ISSUED";
}

const ts = (d: Date | null | undefined) => (d ? timestampFromDate(d) : undefined);

/** A deployment row with its state derived at read time (never the stored, possibly stale one). */
export function deploymentToProto(row: DeploymentRow, derived: DerivedState): Deployment {
  return create(DeploymentSchema, {
    id: row.id,
    name: row.name,
    customer: row.customer,
    kind: KINDS[row.kind as KindName] ?? DeploymentKind.UNSPECIFIED,
    state: stateToProto(derived.state),
    lockReason: lockReasonToProto(derived.lockReason),
    subscriptionStatus: SUBSCRIPTIONS[row.subscriptionStatus as SubscriptionName] ?? SubscriptionStatus.UNSPECIFIED,
    connectivity: CONNECTIVITIES[row.connectivity as ConnectivityName] ?? Connectivity.UNSPECIFIED,
    licenseId: row.licenseId ?? "",
    lastSeenTime: ts(row.lastSeenAt),
    createTime: ts(row.createdAt),
    stateChangeTime: ts(row.stateChangedAt),
    version: BigInt(row.version),
  });
}

/**
 * How much of a licence a caller may see. The token is the one credential Activate needs for an
 * unbound licence, and the fingerprint hash names the box it is bound to: `full` only for callers
 * whose roles may issue licences (who could mint a token anyway); everyone else gets them empty.
 */
export type LicenseView = "full" | "redacted";

/** The licence view of a caller: decided on its permissions (roles mapped by `@lcp/domain`), never on role names. */
export function licenseViewOf(principal: Principal): LicenseView {
  return principal.kind === "admin" && principal.permissions.has("license.issue") ? "full" : "redacted";
}

/**
 * Whether a caller sees a deployment's heartbeat (GetDeployment's `heartbeat`): decided, like
 * ListHeartbeats, on `heartbeat.read`, so `license.read` alone does not widen what a role sees.
 */
export function heartbeatVisibleTo(principal: Principal): boolean {
  return principal.kind === "admin" && principal.permissions.has("heartbeat.read");
}

/**
 * A certificate row as the API shows it to a caller with `view`: its fingerprint hash names the
 * box exactly as the licence's does, so it is redacted the same way.
 */
export function certificateToProto(row: CertificateRow, view: LicenseView): ApplianceCertificate {
  return create(ApplianceCertificateSchema, {
    serial: row.serialNumber,
    notBefore: ts(row.issuedAt),
    notAfter: ts(row.notAfter),
    fingerprintHash: view === "full" ? row.fingerprintHash : "",
    revokeTime: ts(row.revokedAt),
  });
}

/** A licence row as the API shows it to a caller with `view`, status derived at `now`. */
export function licenseToProto(row: LicenseRow, now: Date, view: LicenseView): License {
  const full = view === "full";
  return create(LicenseSchema, {
    id: row.id,
    deploymentId: row.deploymentId,
    status: LICENSE_STATUSES[licenseStatusOf(row, now)],
    entitlements: parseEntitlements(row.entitlements),
    token: full ? row.token : "",
    kid: row.kid,
    fingerprintHash: full ? (row.fingerprintHash ?? "") : "",
    issueTime: ts(row.issuedAt),
    expireTime: ts(row.expiresAt),
    activateTime: ts(row.activatedAt),
    revokeTime: ts(row.revokedAt),
    revokeReason: row.revokeReason ?? "",
  });
}

/** The stored JSON array of entitlements; an unreadable value shows as none rather than failing a list. */
export function parseEntitlements(json: string): string[] {
  try {
    const value: unknown = JSON.parse(json);
    return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
  } catch {
    return [];
  }
}

/** The settings row as the API shows it. */
export function settingsToProto(row: SettingsRow): ProtoSettings {
  const s = settingsOf(row);
  return create(SettingsSchema, {
    heartbeatInterval: durationFromMs(s.heartbeatIntervalMs),
    heartbeatTimeout: durationFromMs(s.heartbeatTimeoutMs),
    graceWindow: durationFromMs(s.graceWindowMs),
    leaseRenewAfter: durationFromMs(s.leaseRenewAfterMs),
    maxClockSkew: durationFromMs(s.maxClockSkewMs),
    sweepInterval: durationFromMs(s.sweepIntervalMs),
    airGappedLease: durationFromMs(s.airGappedLeaseMs),
    airGappedRenewAfter: durationFromMs(s.airGappedRenewAfterMs),
    updateTime: timestampFromDate(row.updatedAt),
    version: BigInt(row.version),
  });
}

/** What a box needs of the settings to run on its own (ActivateResponse, directives). */
export function applianceSettingsToProto(s: Settings): ApplianceSettings {
  return create(ApplianceSettingsSchema, {
    heartbeatInterval: durationFromMs(s.heartbeatIntervalMs),
    graceWindow: durationFromMs(s.graceWindowMs),
    maxClockSkew: durationFromMs(s.maxClockSkewMs),
  });
}

/** The JSON payload stored with a directive row (everything of `Directive` but id, type and time). */
export interface DirectivePayload {
  reason?: string;
  leaseToken?: string;
  jwksJson?: string;
  heartbeatIntervalMs?: number;
  certificatePem?: string;
  certificateChainPem?: string[];
}

/** A stored directive as it is pushed to (or redelivered to) a box. */
export function directiveToProto(row: DirectiveRow): Directive {
  let payload: DirectivePayload = {};
  try {
    payload = JSON.parse(row.payload) as DirectivePayload;
  } catch {
    // A row we cannot read still tells the box its type (LOCK needs nothing else).
  }
  return create(DirectiveSchema, {
    id: row.id,
    type: directiveTypeToProto(row.type),
    reason: payload.reason ?? "",
    issueTime: timestampFromDate(row.createdAt),
    leaseToken: payload.leaseToken ?? "",
    jwksJson: payload.jwksJson ?? "",
    heartbeatInterval: payload.heartbeatIntervalMs === undefined ? undefined : durationFromMs(payload.heartbeatIntervalMs),
    certificatePem: payload.certificatePem ?? "",
    certificateChainPem: payload.certificateChainPem ?? [],
  });
}
