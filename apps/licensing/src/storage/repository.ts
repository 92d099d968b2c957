/**
 * The deployment repository: loading the facts a decision is made on, and writing a change back
 * with compare-and-set on the deployment's `version`. Every change to a deployment or its
 * licence goes through {@link compareAndSetDeployment} (via `applyDeploymentChange`), so two
 * writers that decided on the same facts can never both commit.
 */
import { DEFAULT_SETTINGS, type DeploymentFacts, type DerivedState, type Settings } from "@lcp/domain";
import type { EntityName, FilterQuery, QueryOrderMap } from "@mikro-orm/core";
import type { EntityManager } from "@mikro-orm/knex";
import {
  CertificateEntity,
  DeploymentEntity,
  LicenseEntity,
  SettingsEntity,
  type DeploymentRow,
  type LicenseRow,
  type SettingsRow,
} from "./entities.js";

/** The domain settings held by the settings row (a setting the row predates reads as its default). */
export function settingsOf(row: SettingsRow): Settings {
  return {
    heartbeatIntervalMs: Number(row.heartbeatIntervalMs),
    heartbeatTimeoutMs: Number(row.heartbeatTimeoutMs),
    graceWindowMs: Number(row.graceWindowMs),
    leaseRenewAfterMs: Number(row.leaseRenewAfterMs),
    maxClockSkewMs: Number(row.maxClockSkewMs),
    sweepIntervalMs: Number(row.sweepIntervalMs),
    airGappedLeaseMs: Number(row.airGappedLeaseMs ?? DEFAULT_SETTINGS.airGappedLeaseMs),
    airGappedRenewAfterMs: Number(row.airGappedRenewAfterMs ?? DEFAULT_SETTINGS.airGappedRenewAfterMs),
  };
}

/** The settings row's id: there is exactly one. */
export const SETTINGS_ID = 1;

/** A deployment's facts as the domain reads them (epoch ms), from its row. */
export function factsOf(row: DeploymentRow): DeploymentFacts {
  return {
    licenseRevoked: row.licenseRevokedAt != null,
    licenseExpiresAt: row.licenseExpiresAt?.getTime() ?? null,
    activatedAt: row.activatedAt?.getTime() ?? null,
    boundFingerprintHash: row.fingerprintHash ?? null,
    lastSeenAt: row.lastSeenAt?.getTime() ?? null,
    subscriptionValid: row.subscriptionStatus !== "INVALID",
    airGapped: row.connectivity === "AIR_GAPPED",
  };
}

/** The derived state last recorded on the row (what a transition is measured from). */
export function storedStateOf(row: DeploymentRow): DerivedState {
  return {
    state: row.state as DerivedState["state"],
    lockReason: (row.lockReason ?? null) as DerivedState["lockReason"],
  };
}

/** The columns of the deployment row that mirror the facts. */
export interface FactColumns {
  licenseRevokedAt: Date | null;
  licenseExpiresAt: Date | null;
  activatedAt: Date | null;
  fingerprintHash: string | null;
  lastSeenAt: Date | null;
  subscriptionStatus: "VALID" | "INVALID";
  connectivity: ConnectivityName;
}

/** How a deployment's connectivity is stored. */
export type ConnectivityName = "ONLINE" | "AIR_GAPPED";

/**
 * The deployment columns for a set of facts. `revokedAt` is the revocation time to store when the
 * facts say revoked (the domain keeps a boolean; the row keeps when).
 */
export function factColumns(facts: DeploymentFacts, revokedAt: Date | null): FactColumns {
  const date = (ms: number | null) => (ms === null ? null : new Date(ms));
  return {
    licenseRevokedAt: facts.licenseRevoked ? revokedAt : null,
    licenseExpiresAt: date(facts.licenseExpiresAt),
    activatedAt: date(facts.activatedAt),
    fingerprintHash: facts.boundFingerprintHash,
    lastSeenAt: date(facts.lastSeenAt),
    subscriptionStatus: facts.subscriptionValid ? "VALID" : "INVALID",
    connectivity: facts.airGapped ? "AIR_GAPPED" : "ONLINE",
  };
}

/** A deployment and its current licence, as read for a decision. */
export interface DeploymentSnapshot {
  deployment: DeploymentRow;
  license: LicenseRow | null;
}

/** Loads a deployment and its current licence; null when there is no such deployment. */
export async function loadDeployment(em: EntityManager, deploymentId: string): Promise<DeploymentSnapshot | null> {
  const deployment = await em.findOne(DeploymentEntity, { id: deploymentId }, { disableIdentityMap: true });
  if (!deployment) return null;
  const license = deployment.licenseId
    ? await em.findOne(LicenseEntity, { id: deployment.licenseId }, { disableIdentityMap: true })
    : null;
  return { deployment, license };
}

/**
 * Rows of `entity` matching `where`, in `orderBy` order, at most `limit`: the list reads' path.
 * The driver maps them to property names and types (dates as Date), but they are never built
 * into entities: hydrating a page of 50 cost several times the query itself, and a list only
 * reads them.
 */
export async function findRows<T extends object>(
  em: EntityManager,
  entity: EntityName<T>,
  where: FilterQuery<T>,
  options: { orderBy: QueryOrderMap<T>; limit: number },
): Promise<T[]> {
  return em.createQueryBuilder(entity).select("*").where(where).orderBy(options.orderBy).limit(options.limit).execute<T[]>("all", true);
}

/** Loads a licence by id (any status); null when unknown. */
export async function loadLicense(em: EntityManager, licenseId: string): Promise<LicenseRow | null> {
  return em.findOne(LicenseEntity, { id: licenseId }, { disableIdentityMap: true });
}

/**
 * Writes `patch` to the deployment only if its version is still `expectedVersion`, bumping the
 * version; returns whether it did. A single conditional UPDATE, so on PostgreSQL a concurrent
 * writer blocks on the row and then re-checks the version (and loses), and on SQLite writers are
 * serialised anyway.
 */
export async function compareAndSetDeployment(
  em: EntityManager,
  deploymentId: string,
  expectedVersion: number,
  patch: Partial<Omit<DeploymentRow, "id" | "version">>,
): Promise<boolean> {
  const affected = await em.nativeUpdate(
    DeploymentEntity,
    { id: deploymentId, version: expectedVersion },
    { ...patch, version: expectedVersion + 1 },
  );
  return affected === 1;
}

/** The settings row, or the defaults as a row when none was written yet (a fresh database). */
export async function loadSettingsRow(em: EntityManager, now: Date): Promise<SettingsRow> {
  const row = await em.findOne(SettingsEntity, { id: SETTINGS_ID }, { disableIdentityMap: true });
  return row ?? defaultSettingsRow(now);
}

/** The current settings as the domain reads them. */
export async function loadSettings(em: EntityManager, now: Date): Promise<Settings> {
  return settingsOf(await loadSettingsRow(em, now));
}

/** The defaults of docs/design.md §5 as a settings row at version 0 (never written until first changed). */
export function defaultSettingsRow(now: Date): SettingsRow {
  return {
    id: SETTINGS_ID,
    ...DEFAULT_SETTINGS,
    version: 0,
    updatedAt: now,
  } as SettingsRow;
}

/**
 * Whether an appliance certificate serial may be used by `deploymentId`: recorded at issuance for
 * that deployment and not revoked. An allow-list, so a certificate the appliance CA signed but
 * licensing never handed out (a lost activation race) is refused too.
 *
 * Every mTLS call asks (admission), so after a restart 10,000 boxes ask within a minute: outside a
 * transaction the serials asked in one event-loop turn are read by one statement (see
 * {@link batchedRead}); the answer is the single read's.
 */
export async function isCertificateUsable(em: EntityManager, deploymentId: string, serialNumber: string): Promise<boolean> {
  if (em.isInTransaction()) return (await usableSerials(em, [serialNumber])).get(serialNumber) === deploymentId;
  const driver = em.getDriver();
  let read = serialReads.get(driver);
  if (!read) serialReads.set(driver, (read = batchedRead((serials) => usableSerials(em.fork(), serials))));
  return (await read(serialNumber)) === deploymentId;
}

/** The deployment of each usable (recorded, unrevoked) serial among `serials`. */
async function usableSerials(em: EntityManager, serials: string[]): Promise<Map<string, string>> {
  const rows = await em.find(
    CertificateEntity,
    { serialNumber: { $in: serials }, revokedAt: null },
    { disableIdentityMap: true, fields: ["serialNumber", "deploymentId"] },
  );
  return new Map(rows.map((row) => [row.serialNumber, row.deploymentId]));
}

// One batched serial read per ORM (keyed by its driver, shared by all of its forks).
const serialReads = new WeakMap<object, (serial: string) => Promise<string | undefined>>();

/** Keys per batched statement: far below SQLite's and PostgreSQL's bound-parameter limits. */
const MAX_BATCH_KEYS = 500;

/**
 * A read by key, batched per event-loop turn: `read(key)` queues the key, and every key queued in
 * the same turn is read by one `load(keys)` (chunks of {@link MAX_BATCH_KEYS}) at the end of the
 * turn (`setImmediate`: after the turn's I/O callbacks, where a reconnect storm's calls arrive
 * together). Used by the reads every heartbeat stream makes when it opens: one statement built,
 * prepared and hydrated for hundreds of streams costs less CPU than hundreds, and on SQLite it
 * leaves far fewer native prepared statements (freed only when V8 collects them) to grow the
 * native heap while a storm lasts. Nothing is cached: a key asked in a later turn is read again,
 * after it was asked. A failed load fails every caller of its chunk.
 */
export function batchedRead<V>(load: (keys: string[]) => Promise<Map<string, V>>): (key: string) => Promise<V | undefined> {
  let waiting = new Map<string, { resolve: (value: V | undefined) => void; reject: (err: unknown) => void }[]>();
  let scheduled = false;

  const run = () => {
    scheduled = false;
    const batch = waiting;
    waiting = new Map();
    const keys = [...batch.keys()];
    for (let i = 0; i < keys.length; i += MAX_BATCH_KEYS) {
      const chunk = keys.slice(i, i + MAX_BATCH_KEYS);
      load(chunk).then(
        (found) => {
          for (const key of chunk) for (const w of batch.get(key)!) w.resolve(found.get(key));
        },
        (err: unknown) => {
          for (const key of chunk) for (const w of batch.get(key)!) w.reject(err);
        },
      );
    }
  };

  return (key) =>
    new Promise<V | undefined>((resolve, reject) => {
      const list = waiting.get(key);
      if (list) list.push({ resolve, reject });
      else waiting.set(key, [{ resolve, reject }]);
      if (!scheduled) {
        scheduled = true;
        setImmediate(run);
      }
    });
}

/**
 * The revoke reason a rebind writes. It also marks the boxes the licence was moved off: while the
 * licence is unbound, such a box may not activate it again (domain `activate`).
 */
export const REBIND_REVOKE_REASON = "licence rebound";

/** Whether a rebind of `deploymentId` revoked a certificate of the box with `fingerprintHash` (it was moved off). */
export async function wasMovedOffByRebind(em: EntityManager, deploymentId: string, fingerprintHash: string): Promise<boolean> {
  const row = await em.findOne(
    CertificateEntity,
    { deploymentId, fingerprintHash, revokeReason: REBIND_REVOKE_REASON },
    { disableIdentityMap: true, fields: ["serialNumber"] },
  );
  return row !== null;
}

/** Revokes every usable certificate of a deployment (rebind, revoke, re-activation); returns how many. */
export async function revokeCertificates(em: EntityManager, deploymentId: string, now: Date, reason: string): Promise<number> {
  return em.nativeUpdate(
    CertificateEntity,
    { deploymentId, revokedAt: null },
    { revokedAt: now, revokeReason: reason },
  );
}
