/**
 * Request validation for LicensingService: the one place every field is checked and turned into
 * typed values. It runs before any remote call or transaction, so a refused request never writes
 * a row. Refusals are DomainErrors whose codes libs/rpc/src/errors.ts maps (INVALID_ARGUMENT,
 * REASON_REQUIRED, FINGERPRINT_INVALID, PAGE_TOKEN_INVALID → InvalidArgument).
 */
import { createHash } from "node:crypto";
import type { Duration, FieldMask, Timestamp } from "@bufbuild/protobuf/wkt";
import { durationMs, timestampDate } from "@bufbuild/protobuf/wkt";
import {
  clampPageSize,
  DAY_MS,
  SETTING_FIELD_NAMES,
  validateReason,
  type DeploymentState,
  type PlainTextOptions,
  type Settings,
} from "@lcp/domain";
import type {
  IssueLicenseRequest,
  ListDeploymentsRequest,
  ListLicensesRequest,
  ProvisionDeploymentRequest,
  RebindLicenseRequest,
  RevokeLicenseRequest,
  SetConnectivityRequest,
  SetSubscriptionStatusRequest,
  UpdateSettingsRequest,
} from "@lcp/proto/licensing/v1/licensing_service_pb";
import { DomainError, stateFromProto } from "@lcp/rpc";
import type { ConnectivityName } from "../storage/repository.js";
import {
  connectivityFromProto,
  kindFromProto,
  licenseStatusFromProto,
  subscriptionFromProto,
  type KindName,
  type LicenseStatusName,
  type SubscriptionName,
} from "../mapping.js";
import { invalid, LIST_PAGE, MAX_REASON_LENGTH, requireFingerprintHash, requireId, requirePlainText, UUID } from "../validation.js";

/** The licence term when the request names none (the proto's contract). */
export const DEFAULT_TERM_MS = 365 * DAY_MS;
/** The longest licence term accepted: long-lived appliances, but not "for ever". */
export const MAX_TERM_MS = 10 * 365 * DAY_MS;
/** Bounds on free-text fields, so the database and the audit trail never hold megabytes. */
export const MAX_NAME_LENGTH = 200;
export const MAX_ENTITLEMENTS = 100;
export const MAX_ENTITLEMENT_LENGTH = 128;

function requireText(value: string, field: string, max = MAX_NAME_LENGTH): string {
  const trimmed = requirePlainText(value, field).trim();
  if (trimmed === "") throw invalid(field, `${field} is required`);
  if (trimmed.length > max) throw invalid(field, `${field} must be at most ${max} characters`);
  return trimmed;
}

function optionalText(value: string, field: string, max: number, options?: PlainTextOptions): string {
  const trimmed = requirePlainText(value, field, options).trim();
  if (trimmed.length > max) throw invalid(field, `${field} must be at most ${max} characters`);
  return trimmed;
}

/** Entitlements: at most 100 distinct non-empty names of at most 128 characters, order kept. */
export function validateEntitlements(values: readonly string[], field = "entitlements"): string[] {
  if (values.length > MAX_ENTITLEMENTS) throw invalid(field, `${field} may hold at most ${MAX_ENTITLEMENTS} entries`);
  const out: string[] = [];
  for (const raw of values) {
    const value = requirePlainText(raw, field).trim();
    if (value === "") throw invalid(field, `${field} must not hold empty names`);
    if (value.length > MAX_ENTITLEMENT_LENGTH) {
      throw invalid(field, `each of ${field} must be at most ${MAX_ENTITLEMENT_LENGTH} characters`);
    }
    if (!out.includes(value)) out.push(value);
  }
  return out;
}

function validDurationMs(d: Duration, field: string): number {
  // A Duration's seconds and nanos must agree in sign; anything else is not a duration.
  if ((d.seconds < 0n && d.nanos > 0) || (d.seconds > 0n && d.nanos < 0)) {
    throw invalid(field, `${field} is not a valid duration`);
  }
  const ms = durationMs(d);
  if (!Number.isFinite(ms)) throw invalid(field, `${field} is out of range`);
  return ms;
}

/** The end of a licence term: from `term` (from now) or `expire_time`, not both; default 365 days. */
export function validateTermEnd(term: Duration | undefined, expireTime: Timestamp | undefined, now: Date): Date {
  if (term && expireTime) throw invalid("term", "set term or expire_time, not both");
  if (expireTime) {
    const end = timestampDate(expireTime);
    if (!(end.getTime() > now.getTime())) throw invalid("expire_time", "expire_time must be in the future");
    if (end.getTime() - now.getTime() > MAX_TERM_MS) throw invalid("expire_time", "the licence term may be at most 10 years");
    // Tokens carry whole seconds; a sub-second term would be signed as already expired.
    if (end.getTime() - now.getTime() < 1_000) throw invalid("expire_time", "the licence term must be at least 1 second");
    return end;
  }
  const ms = term ? validDurationMs(term, "term") : DEFAULT_TERM_MS;
  if (ms < 1_000) throw invalid("term", "term must be at least 1 second");
  if (ms > MAX_TERM_MS) throw invalid("term", "term may be at most 10 years");
  return new Date(now.getTime() + ms);
}

/** A validated ProvisionDeployment request. */
export interface ProvisionInput {
  name: string;
  customer: string;
  kind: KindName;
  entitlements: string[];
  expiresAt: Date;
  autoIssue: boolean;
  connectivity: ConnectivityName;
}

/** Validates ProvisionDeployment: name, customer, a known kind; auto-issue defaults to yes for ON_PREM only. */
export function validateProvision(req: ProvisionDeploymentRequest, now: Date): ProvisionInput {
  const name = requireText(req.name, "name");
  const customer = requireText(req.customer, "customer");
  const kind = kindFromProto(req.kind);
  if (!kind) {
    throw invalid("kind", req.kind === 0 ? "kind is required (ON_PREM or CLOUD)" : `kind ${req.kind} is not a known deployment kind`);
  }
  const entitlements = validateEntitlements(req.entitlements);
  const expiresAt = validateTermEnd(req.term, undefined, now);
  const connectivity = requireConnectivity(req.connectivity);
  return { name, customer, kind, entitlements, expiresAt, autoIssue: req.autoIssueLicense ?? kind === "ON_PREM", connectivity };
}

/** A connectivity enum value: UNSPECIFIED reads as ONLINE; an unknown number is refused. */
function requireConnectivity(value: number): ConnectivityName {
  const connectivity = connectivityFromProto(value);
  if (!connectivity) throw invalid("connectivity", `connectivity ${value} is not a known connectivity (ONLINE or AIR_GAPPED)`);
  return connectivity;
}

/** A validated IssueLicense request. */
export interface IssueInput {
  deploymentId: string;
  entitlements: string[];
  expiresAt: Date;
}

/** Validates IssueLicense. */
export function validateIssue(req: IssueLicenseRequest, now: Date): IssueInput {
  return {
    deploymentId: requireId(req.deploymentId, "deployment_id"),
    entitlements: validateEntitlements(req.entitlements),
    expiresAt: validateTermEnd(req.term, req.expireTime, now),
  };
}

function requireReason(reason: string): string {
  const verdict = validateReason(reason);
  if (!verdict.ok) throw new DomainError(verdict.code, verdict.message, { field: "reason" });
  return verdict.reason;
}

/** Validates RevokeLicense: a licence id and a reason for the audit trail. */
export function validateRevoke(req: RevokeLicenseRequest): { licenseId: string; reason: string } {
  return { licenseId: requireId(req.licenseId, "license_id"), reason: requireReason(req.reason) };
}

/**
 * Validates SetConnectivity: a deployment id, ONLINE or AIR_GAPPED (UNSPECIFIED reads as ONLINE,
 * as everywhere), and a reason for the audit trail, checked like RevokeLicense's.
 */
export function validateSetConnectivity(req: SetConnectivityRequest): { deploymentId: string; connectivity: ConnectivityName; reason: string } {
  return {
    deploymentId: requireId(req.deploymentId, "deployment_id"),
    connectivity: requireConnectivity(req.connectivity),
    reason: requireReason(req.reason),
  };
}

/** Validates RebindLicense: an empty new fingerprint unbinds (the next box to activate binds). */
export function validateRebind(req: RebindLicenseRequest): {
  licenseId: string;
  newFingerprintHash: string | null;
  reason: string;
} {
  const licenseId = requireId(req.licenseId, "license_id");
  const newFingerprintHash = req.newFingerprint === "" ? null : requireFingerprintHash(req.newFingerprint, "new_fingerprint");
  return { licenseId, newFingerprintHash, reason: requireReason(req.reason) };
}

/** Validates SetSubscriptionStatus: VALID or INVALID; the reason is optional but bounded. */
export function validateSubscription(req: SetSubscriptionStatusRequest): {
  deploymentId: string;
  status: SubscriptionName;
  reason: string;
} {
  const deploymentId = requireId(req.deploymentId, "deployment_id");
  const status = subscriptionFromProto(req.status);
  if (!status) {
    throw invalid(
      "status",
      req.status === 0 ? "status is required (VALID or INVALID)" : `status ${req.status} is not a known subscription status`,
    );
  }
  return { deploymentId, status, reason: optionalText(req.reason, "reason", MAX_REASON_LENGTH, { multiline: true }) };
}

/** A keyset position: list order is by id (UUIDv7, so by creation), ascending. */
export interface PageQuery {
  pageSize: number;
  afterId: string | null;
}

/** The filter part of a page token: a token is refused when replayed with another filter. */
function filterKey(filter: unknown): string {
  return createHash("sha256").update(JSON.stringify(filter)).digest("base64url").slice(0, 12);
}

/** An opaque page token for the position after `lastId` under `filter`. */
export function encodePageToken(lastId: string, filter: unknown): string {
  return Buffer.from(JSON.stringify({ a: lastId, f: filterKey(filter) }), "utf8").toString("base64url");
}

function validatePage(pageSize: number, pageToken: string, filter: unknown): PageQuery {
  const size = clampPageSize(pageSize, LIST_PAGE);
  if (!size.ok) throw new DomainError(size.code, size.message, { field: "page_size" });
  if (pageToken === "") return { pageSize: size.pageSize, afterId: null };
  const bad = () => new DomainError("PAGE_TOKEN_INVALID", "page_token is not one this service issued for this filter", { field: "page_token" });
  if (pageToken.length > 512) throw bad();
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(pageToken, "base64url").toString("utf8"));
  } catch {
    throw bad();
  }
  const t = decoded as { a?: unknown; f?: unknown };
  if (typeof t.a !== "string" || !UUID.test(t.a) || t.f !== filterKey(filter)) throw bad();
  return { pageSize: size.pageSize, afterId: t.a };
}

/** A validated ListLicenses request. */
export interface ListLicensesQuery extends PageQuery {
  statuses: LicenseStatusName[];
  deploymentId: string | null;
  customer: string | null;
  /** Only licences whose deployment now derives one of these states; all when empty. */
  deploymentStates: DeploymentState[];
  /** What the page tokens are bound to (encodePageToken's `filter`). */
  tokenFilter: object;
}

/** Validates ListLicenses: known statuses and deployment states, optional deployment and customer, page_size 0..500. */
export function validateListLicenses(req: ListLicensesRequest): ListLicensesQuery {
  const statuses: LicenseStatusName[] = [];
  for (const s of req.statuses) {
    const name = licenseStatusFromProto(s);
    if (!name) throw invalid("statuses", `statuses holds an unknown licence status (${s})`);
    if (!statuses.includes(name)) statuses.push(name);
  }
  statuses.sort();
  const deploymentStates = validateStates(req.deploymentStates, "deployment_states");
  const deploymentId = req.deploymentId === "" ? null : requireId(req.deploymentId, "deployment_id");
  const customer = optionalText(req.customer, "customer", MAX_NAME_LENGTH) || null;
  // The state filter joins the token's filter key only when set, so tokens of a filter without
  // it read the same as before the filter existed.
  const tokenFilter = { statuses, deploymentId, customer, ...(deploymentStates.length > 0 ? { deploymentStates } : {}) };
  return { statuses, deploymentId, customer, deploymentStates, tokenFilter, ...validatePage(req.pageSize, req.pageToken, tokenFilter) };
}

/** Known deployment states, once each, sorted (so a token's filter key does not depend on their order). */
function validateStates(values: readonly number[], field: string): DeploymentState[] {
  const states: DeploymentState[] = [];
  for (const s of values) {
    const name = stateFromProto(s);
    if (!name) throw invalid(field, `${field} holds an unknown deployment state (${s})`);
    if (!states.includes(name)) states.push(name);
  }
  return states.sort();
}

/** A validated ListDeployments request. */
export interface ListDeploymentsQuery extends PageQuery {
  states: DeploymentState[];
  customer: string | null;
}

/** Validates ListDeployments: known states, optional customer, page_size 0..500. */
export function validateListDeployments(req: ListDeploymentsRequest): ListDeploymentsQuery {
  const states = validateStates(req.states, "states");
  const customer = optionalText(req.customer, "customer", MAX_NAME_LENGTH) || null;
  const filter = { states, customer };
  return { ...filter, ...validatePage(req.pageSize, req.pageToken, filter) };
}

const SETTING_KEYS_BY_FIELD = new Map<string, keyof Settings>(
  (Object.entries(SETTING_FIELD_NAMES) as [keyof Settings, string][]).map(([key, field]) => [field, key]),
);
type DurationField = "heartbeatInterval" | "heartbeatTimeout" | "graceWindow" | "leaseRenewAfter" | "maxClockSkew" | "sweepInterval" | "airGappedLease" | "airGappedRenewAfter";
const PROTO_FIELDS: Record<keyof Settings, DurationField> = {
  heartbeatIntervalMs: "heartbeatInterval",
  heartbeatTimeoutMs: "heartbeatTimeout",
  graceWindowMs: "graceWindow",
  leaseRenewAfterMs: "leaseRenewAfter",
  maxClockSkewMs: "maxClockSkew",
  sweepIntervalMs: "sweepInterval",
  airGappedLeaseMs: "airGappedLease",
  airGappedRenewAfterMs: "airGappedRenewAfter",
};

/** A validated UpdateSettings request: the fields to change (ranges are the domain's, checked on the merged result). */
export interface UpdateSettingsInput {
  patch: Partial<Settings>;
  /** Only update if settings are still at this version; null when the caller did not ask. */
  expectedVersion: number | null;
}

/**
 * Validates UpdateSettings. `update_mask` paths are the snake_case field names (`grace_window`,
 * also `settings.grace_window`); a masked field must be set. With an empty mask, every duration
 * set in `settings` is changed (and at least one must be).
 */
export function validateUpdateSettings(req: UpdateSettingsRequest): UpdateSettingsInput {
  const settings = req.settings;
  if (!settings) throw invalid("settings", "settings is required");
  const paths = (req.updateMask as FieldMask | undefined)?.paths ?? [];
  const keys: (keyof Settings)[] = [];
  if (paths.length > 0) {
    for (const raw of paths) {
      const path = raw.startsWith("settings.") ? raw.slice("settings.".length) : raw;
      const key = SETTING_KEYS_BY_FIELD.get(path);
      if (!key) {
        throw invalid("update_mask", `update_mask path ${JSON.stringify(raw)} is not a settings duration (${[...SETTING_KEYS_BY_FIELD.keys()].join(", ")})`);
      }
      if (!settings[PROTO_FIELDS[key]]) throw invalid(path, `${path} is in update_mask but not set`);
      if (!keys.includes(key)) keys.push(key);
    }
  } else {
    for (const key of Object.keys(PROTO_FIELDS) as (keyof Settings)[]) if (settings[PROTO_FIELDS[key]]) keys.push(key);
    if (keys.length === 0) throw invalid("settings", "no settings to change: set at least one duration");
  }
  const patch: { -readonly [K in keyof Settings]?: number } = {};
  for (const key of keys) patch[key] = validDurationMs(settings[PROTO_FIELDS[key]]!, SETTING_FIELD_NAMES[key]);
  const expected = req.expectedVersion;
  if (expected < 0n) throw invalid("expected_version", "expected_version must not be negative");
  return { patch, expectedVersion: expected === 0n ? null : Number(expected) };
}
