/**
 * Licensing's tables (docs/design.md §2: deployments, licences, subscriptions, settings, certificate
 * serials, directives, outbox). Entities are `defineEntity` schemas: tsx/esbuild emit no decorator
 * metadata, so nothing here relies on it.
 *
 * The deployment row holds every fact the state is derived from (docs/design.md §5) — its own
 * (subscription, last seen) and those of its current licence, mirrored from the licence row in
 * the same transaction — so deriving, filtering and sweeping read one row, never a join. It also
 * holds the last *stored* derived state (so a transition is recorded exactly once) and `version`,
 * bumped by every change and used for compare-and-set: two writers that read the same version
 * cannot both commit a change derived from it.
 */
import { defineEntity, p, type InferEntity } from "@mikro-orm/core";

/** A customer deployment: an on-prem appliance (or a cloud tenant) and the facts about it. */
export const DeploymentEntity = defineEntity({
  name: "Deployment",
  tableName: "deployment",
  properties: {
    /** UUIDv7, so ids sort by creation and serve as the keyset cursor. */
    id: p.string().length(36).primary(),
    name: p.string().length(200),
    customer: p.string().length(200).index(),
    /** `ON_PREM` | `CLOUD`. */
    kind: p.string().length(16),
    /** `VALID` | `INVALID`: the subscription fact (one per deployment, so a column, not a table). */
    subscriptionStatus: p.string().length(16),
    subscriptionReason: p.text().nullable(),
    subscriptionChangedAt: p.datetime().nullable(),
    /** The deployment's current licence (the newest one not superseded); null before the first issue. */
    licenseId: p.string().length(36).nullable(),
    /** Facts of the current licence, mirrored: its term end, revocation, first activation and bound box. */
    licenseExpiresAt: p.datetime().nullable(),
    licenseRevokedAt: p.datetime().nullable(),
    activatedAt: p.datetime().nullable(),
    /** SHA-256 hex of the bound box's fingerprint; null while unbound. */
    fingerprintHash: p.string().length(64).nullable(),
    /** Server time of the last accepted activation or heartbeat; cleared by a rebind. */
    lastSeenAt: p.datetime().nullable(),
    /**
     * `ONLINE` | `AIR_GAPPED` (docs/design.md §15): whether the box heartbeats or renews by file,
     * which decides how its silence is measured.
     */
    connectivity: p.string().length(16).default("ONLINE"),
    /** What the box last reported (activation or heartbeat). */
    agentVersion: p.string().length(128).nullable(),
    /** The stored derived state (`PENDING` … `LOCKED`): what was last recorded, not the truth. */
    state: p.string().length(16),
    /** `REVOKED` | `EXPIRED` | `OFFLINE` when state is LOCKED. */
    lockReason: p.string().length(16).nullable(),
    stateChangedAt: p.datetime(),
    /** Bumped by every change; compare-and-set guard. */
    version: p.integer(),
    createdAt: p.datetime(),
    updatedAt: p.datetime(),
  },
});

/** A deployment row as the ORM hydrates it. */
export type DeploymentRow = InferEntity<typeof DeploymentEntity>;

/**
 * A licence: the signed token and the facts about it. Status is not stored; it follows from the
 * timestamps (revoked → superseded → expired → activated → issued), so it is never stale.
 */
export const LicenseEntity = defineEntity({
  name: "License",
  tableName: "license",
  properties: {
    id: p.string().length(36).primary(),
    deploymentId: p.string().length(36).index(),
    /** Copied from the deployment (which never changes customer) so the list filter needs no join. */
    customer: p.string().length(200).index(),
    /** JSON array of strings. */
    entitlements: p.text(),
    token: p.text(),
    kid: p.string().length(128),
    /** SHA-256 hex of the bound box's fingerprint; null while unbound. The raw fingerprint is never stored. */
    fingerprintHash: p.string().length(64).nullable(),
    issuedAt: p.datetime(),
    expiresAt: p.datetime(),
    /** First activation by the bound box; cleared by a rebind. */
    activatedAt: p.datetime().nullable(),
    revokedAt: p.datetime().nullable(),
    revokeReason: p.text().nullable(),
    /** Set when a newer licence for the same deployment replaced this one. */
    supersededAt: p.datetime().nullable(),
    supersededBy: p.string().length(36).nullable(),
    /** The seq of the last lease signed for this licence (strictly increasing). */
    leaseSeq: p.integer().default(0),
    leaseIssuedAt: p.datetime().nullable(),
  },
});

/** A licence row as the ORM hydrates it. */
export type LicenseRow = InferEntity<typeof LicenseEntity>;

/**
 * Licensing settings: one row (id 1) with a version for compare-and-set. Durations in
 * milliseconds (bigint columns: 365 days does not fit in 32 bits).
 */
export const SettingsEntity = defineEntity({
  name: "Settings",
  tableName: "settings",
  properties: {
    id: p.integer().primary().autoincrement(false),
    heartbeatIntervalMs: p.bigint("number"),
    heartbeatTimeoutMs: p.bigint("number"),
    graceWindowMs: p.bigint("number"),
    leaseRenewAfterMs: p.bigint("number"),
    maxClockSkewMs: p.bigint("number"),
    sweepIntervalMs: p.bigint("number"),
    // Null in a row written before these settings existed: read as the defaults (settingsOf).
    airGappedLeaseMs: p.bigint("number").nullable(),
    airGappedRenewAfterMs: p.bigint("number").nullable(),
    version: p.integer(),
    updatedAt: p.datetime(),
  },
});

/** The settings row as the ORM hydrates it. */
export type SettingsRow = InferEntity<typeof SettingsEntity>;

/**
 * A client certificate issued to an appliance at activation (or renewal). Only serials recorded
 * here and not revoked are accepted on mTLS calls: rebind and revoke set `revokedAt`.
 */
export const CertificateEntity = defineEntity({
  name: "Certificate",
  tableName: "certificate",
  properties: {
    /** Hex serial, normalised (`normalizeSerialNumber`: uppercase, no leading zero bytes), as the rpc layer reports it. */
    serialNumber: p.string().length(64).primary(),
    deploymentId: p.string().length(36).index(),
    licenseId: p.string().length(36),
    /** Which box it was issued to. */
    fingerprintHash: p.string().length(64),
    issuedAt: p.datetime(),
    notAfter: p.datetime(),
    revokedAt: p.datetime().nullable(),
    revokeReason: p.text().nullable(),
  },
});

/** A certificate row as the ORM hydrates it. */
export type CertificateRow = InferEntity<typeof CertificateEntity>;

/**
 * A directive for a box (LOCK, SUSPEND, REACTIVATE, RENEW_LEASE …). Written in the transaction of
 * the change that caused it; pushed at once if the box is connected, redelivered until acked.
 */
export const DirectiveEntity = defineEntity({
  name: "Directive",
  tableName: "directive",
  properties: {
    id: p.string().length(36).primary(),
    deploymentId: p.string().length(36),
    /** `LOCK` | `SUSPEND` | `REACTIVATE` | `RENEW_LEASE` | … (DirectiveType without its prefix). */
    type: p.string().length(32),
    /** JSON: reason, leaseToken, jwksJson, heartbeatIntervalMs, certificate … */
    payload: p.text(),
    createdAt: p.datetime(),
    ackedAt: p.datetime().nullable(),
  },
  // Redelivery reads "unacked directives of this deployment, oldest first".
  indexes: [{ properties: ["deploymentId", "ackedAt", "createdAt"] }],
});

/** A directive row as the ORM hydrates it. */
export type DirectiveRow = InferEntity<typeof DirectiveEntity>;
