/** Times and enum values in words, for every screen. */
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { ActorKind, Outcome } from "@lcp/proto/audit/v1/audit_service_pb";
import {
  Connectivity,
  DeploymentKind,
  DeploymentState,
  DirectiveType,
  LicenseStatus,
  LockReason,
  SubscriptionStatus,
} from "@lcp/proto/licensing/v1/types_pb";

/** A Timestamp as a Date, or null when unset (proto3 leaves absent timestamps undefined). */
export function dateOf(ts: Timestamp | undefined): Date | null {
  if (!ts) return null;
  const d = timestampDate(ts);
  return Number.isNaN(d.getTime()) ? null : d;
}

const absolute = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const absoluteSeconds = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

const compactSeconds = new Intl.DateTimeFormat(undefined, { dateStyle: "short", timeStyle: "medium" });

/** A short date with the time to the second, for dense tables ("05/03/2026, 14:02:07"). */
export function formatCompactDateTime(date: Date): string {
  return compactSeconds.format(date);
}

/** A date and time in the operator's locale ("5 Mar 2026, 14:02"). */
export function formatDateTime(date: Date, withSeconds = false): string {
  return (withSeconds ? absoluteSeconds : absolute).format(date);
}

const dayOnly = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });

/** A date in the operator's locale ("5 Mar 2026"). */
export function formatDate(date: Date): string {
  return dayOnly.format(date);
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

/** How long ago (or until) a moment is, in words: "3 minutes ago", "in 2 days". */
export function formatRelative(date: Date, now: number): string {
  const diff = date.getTime() - now;
  const abs = Math.abs(diff);
  const units: Array<[Intl.RelativeTimeFormatUnit, number]> = [
    ["year", 365 * 86_400_000],
    ["month", 30 * 86_400_000],
    ["day", 86_400_000],
    ["hour", 3_600_000],
    ["minute", 60_000],
  ];
  for (const [unit, size] of units) {
    if (abs >= size) return relative.format(Math.trunc(diff / size), unit);
  }
  if (abs < 5_000) return "just now";
  return relative.format(Math.trunc(diff / 1000), "second");
}

/** Deployment states in words. */
export const STATE_LABELS: Readonly<Record<DeploymentState, string>> = {
  [DeploymentState.UNSPECIFIED]: "Unknown",
  [DeploymentState.PENDING]: "Pending",
  [DeploymentState.ACTIVE]: "Active",
  [DeploymentState.GRACE]: "Grace",
  [DeploymentState.SUSPENDED]: "Suspended",
  [DeploymentState.LOCKED]: "Locked",
};

/** The states an operator filters by, in the order of the README's states table. */
export const FILTER_STATES = [
  DeploymentState.PENDING,
  DeploymentState.ACTIVE,
  DeploymentState.GRACE,
  DeploymentState.SUSPENDED,
  DeploymentState.LOCKED,
] as const;

/** Lock reasons in words. */
export const LOCK_REASON_LABELS: Readonly<Record<LockReason, string>> = {
  [LockReason.UNSPECIFIED]: "",
  [LockReason.REVOKED]: "revoked",
  [LockReason.EXPIRED]: "expired",
  [LockReason.OFFLINE]: "offline",
};

/** Licence statuses in words. */
export const LICENSE_STATUS_LABELS: Readonly<Record<LicenseStatus, string>> = {
  [LicenseStatus.UNSPECIFIED]: "Unknown",
  [LicenseStatus.ISSUED]: "Issued",
  [LicenseStatus.ACTIVATED]: "Activated",
  [LicenseStatus.REVOKED]: "Revoked",
  [LicenseStatus.EXPIRED]: "Expired",
  [LicenseStatus.SUPERSEDED]: "Superseded",
};

/** Deployment kinds in words. */
export const KIND_LABELS: Readonly<Record<DeploymentKind, string>> = {
  [DeploymentKind.UNSPECIFIED]: "Unknown",
  [DeploymentKind.ON_PREM]: "On-prem",
  [DeploymentKind.CLOUD]: "Cloud",
};

/** How a deployment's box reaches the control plane, in words (unset reads as online, as the proto says). */
export const CONNECTIVITY_LABELS: Readonly<Record<Connectivity, string>> = {
  [Connectivity.UNSPECIFIED]: "Online",
  [Connectivity.ONLINE]: "Online",
  [Connectivity.AIR_GAPPED]: "Air-gapped",
};

/** Subscription statuses in words. */
export const SUBSCRIPTION_LABELS: Readonly<Record<SubscriptionStatus, string>> = {
  [SubscriptionStatus.UNSPECIFIED]: "Unknown",
  [SubscriptionStatus.VALID]: "Valid",
  [SubscriptionStatus.INVALID]: "Invalid",
};

/** Directive types in words. */
export const DIRECTIVE_LABELS: Readonly<Record<DirectiveType, string>> = {
  [DirectiveType.UNSPECIFIED]: "Unknown",
  [DirectiveType.LOCK]: "Lock",
  [DirectiveType.SUSPEND]: "Suspend",
  [DirectiveType.REACTIVATE]: "Reactivate",
  [DirectiveType.RENEW_LEASE]: "Renew lease",
  [DirectiveType.RENEW_CERTIFICATE]: "Renew certificate",
  [DirectiveType.REFRESH_KEYS]: "Refresh keys",
  [DirectiveType.SET_INTERVAL]: "Set heartbeat interval",
};

/** Audit outcomes in words. */
export const OUTCOME_LABELS: Readonly<Record<Outcome, string>> = {
  [Outcome.UNSPECIFIED]: "Any",
  [Outcome.SUCCESS]: "Success",
  [Outcome.DENIED]: "Denied",
  [Outcome.FAILURE]: "Failure",
};

/** Audit actor kinds in words. */
export const ACTOR_KIND_LABELS: Readonly<Record<ActorKind, string>> = {
  [ActorKind.UNSPECIFIED]: "",
  [ActorKind.ADMIN]: "admin",
  [ActorKind.SERVICE]: "service",
  [ActorKind.APPLIANCE]: "appliance",
  [ActorKind.SYSTEM]: "system",
  [ActorKind.ANONYMOUS]: "anonymous",
};

/** A label of an enum table, "Unknown" for a value this build does not know yet. */
export function labelOf<K extends number>(table: Readonly<Record<K, string>>, value: K): string {
  return table[value] ?? `Unknown (${String(value)})`;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether a string is a UUID (every licensing id is a UUIDv7). */
export function isUuid(value: string): boolean {
  return UUID.test(value);
}

/**
 * The tail of an id, for dense tables (the full id is in the title and on copy). The tail, not
 * the head: a UUIDv7 starts with its creation time, so ids made together share their head.
 */
export function shortId(id: string): string {
  return id.length > 12 ? `…${id.slice(-8)}` : id;
}

/** Bytes as lower-case hex (audit hashes). */
export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Entitlements as typed: one per line or comma-separated, trimmed, without repeats. */
export function parseEntitlements(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split(/[\n,]/)) {
    const e = raw.trim();
    if (e !== "" && !out.includes(e)) out.push(e);
  }
  return out;
}
