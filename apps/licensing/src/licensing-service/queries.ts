/**
 * The read side: GetLicense / ListLicenses ("Open Licenses to see existing licences") and
 * GetDeployment / ListDeployments. Licence status and deployment state are derived at read time
 * from the facts and the current settings — never the stored, possibly stale state — and the
 * filters are the same derivations written as SQL over the fact columns, so a filter and the
 * state it returns always agree. Lists are keyset pages by id (UUIDv7: creation order).
 */
import { create } from "@bufbuild/protobuf";
import { deriveState, type DeploymentState, type Settings } from "@lcp/domain";
import {
  GetDeploymentResponseSchema,
  GetLicenseResponseSchema,
  ListDeploymentsResponseSchema,
  ListLicensesResponseSchema,
  type GetDeploymentRequest,
  type GetDeploymentResponse,
  type GetLicenseRequest,
  type GetLicenseResponse,
  type ListDeploymentsRequest,
  type ListDeploymentsResponse,
  type ListLicensesRequest,
  type ListLicensesResponse,
} from "@lcp/proto/licensing/v1/licensing_service_pb";
import { DomainError } from "@lcp/rpc";
import { raw, type FilterQuery } from "@mikro-orm/core";
import type { LicensingDeps } from "../deps.js";
import type { HeartbeatStatusReader } from "../heartbeat/status.js";
import { certificateToProto, deploymentToProto, licenseStatusOf, licenseToProto, type LicenseStatusName, type LicenseView } from "../mapping.js";
import { ALL_STATES, derivedCodeSql } from "../reconcile/derivation-sql.js";
import { CertificateEntity, DeploymentEntity, LicenseEntity, type DeploymentRow, type LicenseRow } from "../storage/entities.js";
import { factsOf, findRows, loadLicense, loadSettings } from "../storage/repository.js";
import { encodePageToken, validateListDeployments, validateListLicenses } from "./validate.js";
import { requireId } from "../validation.js";

/** One licence. */
export async function getLicense(deps: LicensingDeps, req: GetLicenseRequest, view: LicenseView): Promise<GetLicenseResponse> {
  const licenseId = requireId(req.licenseId, "license_id");
  const license = await loadLicense(deps.db.em(), licenseId);
  if (!license) throw new DomainError("NOT_FOUND", `licence ${licenseId} does not exist`, { licenseId });
  return create(GetLicenseResponseSchema, { license: licenseToProto(license, deps.now(), view) });
}

/** A licence status as a condition on the licence's timestamps (the mirror of `licenseStatusOf`). */
function licenseStatusCondition(status: LicenseStatusName, now: Date): FilterQuery<LicenseRow> {
  const live = { revokedAt: null, supersededAt: null, expiresAt: { $gt: now } };
  switch (status) {
    case "REVOKED":
      return { revokedAt: { $ne: null } };
    case "SUPERSEDED":
      return { revokedAt: null, supersededAt: { $ne: null } };
    case "EXPIRED":
      return { revokedAt: null, supersededAt: null, expiresAt: { $lte: now } };
    case "ACTIVATED":
      return { ...live, fingerprintHash: { $ne: null }, activatedAt: { $ne: null } };
    case "ISSUED":
      return { ...live, $or: [{ fingerprintHash: null }, { activatedAt: null }] };
  }
}

/**
 * A derived deployment state filter on licences, in SQL: each licence's deployment (one primary
 * key probe per licence read, correlated on `deployment_id`) derived by the sweep's own
 * derivation (`derivedCodeSql`), its code one of `states`' codes. A correlated probe, not a
 * join the planner may turn into a scan of every deployment: a keyset page reads licences in id
 * order and stops at its limit.
 */
export function licenseDeploymentStateCondition(states: readonly DeploymentState[], now: Date, settings: Settings, pg: boolean): FilterQuery<LicenseRow> {
  const codes = ALL_STATES.filter((s) => states.includes(s.state.state)).map((s) => s.code);
  const derived = derivedCodeSql("ld", now, settings, pg);
  return {
    [raw((alias: string) => `(select ${derived.sql} from deployment ld where ld.id = ${alias}.deployment_id)`, derived.params)]: { $in: codes },
  } as FilterQuery<LicenseRow>;
}

/**
 * A page of licences, filtered by status, deployment, customer and their deployment's derived
 * state, with each licence's deployment (once) and its state derived now.
 */
export async function listLicenses(deps: LicensingDeps, req: ListLicensesRequest, view: LicenseView): Promise<ListLicensesResponse> {
  const query = validateListLicenses(req);
  const em = deps.db.em();
  const now = deps.now();
  const settings = await loadSettings(em, now);
  const where: FilterQuery<LicenseRow>[] = [];
  if (query.deploymentId) where.push({ deploymentId: query.deploymentId });
  if (query.customer) where.push({ customer: query.customer });
  if (query.statuses.length > 0) where.push({ $or: query.statuses.map((s) => licenseStatusCondition(s, now)) });
  if (query.deploymentStates.length > 0) where.push(licenseDeploymentStateCondition(query.deploymentStates, now, settings, deps.db.driver === "postgresql"));
  if (query.afterId) where.push({ id: { $gt: query.afterId } });
  const rows = await findRows<LicenseRow>(em, LicenseEntity, (where.length > 0 ? { $and: where } : {}) as FilterQuery<LicenseRow>, {
    orderBy: { id: "asc" },
    limit: query.pageSize + 1,
  });
  const page = rows.slice(0, query.pageSize);
  const deploymentIds = [...new Set(page.map((r) => r.deploymentId))];
  const deploymentRows =
    deploymentIds.length > 0 ? await findRows<DeploymentRow>(em, DeploymentEntity, { id: { $in: deploymentIds } }, { orderBy: { id: "asc" }, limit: deploymentIds.length }) : [];
  const derivedOf = new Map(deploymentRows.map((row) => [row.id, { row, state: deriveState(factsOf(row), now.getTime(), settings) }]));
  // Belt and braces: the SQL filters and licenseStatusOf / deriveState are one rule written twice
  // (and a deployment read a moment after its licence may have moved on meanwhile).
  const shown = page.filter((r) => {
    if (query.statuses.length > 0 && !query.statuses.includes(licenseStatusOf(r, now))) return false;
    const state = derivedOf.get(r.deploymentId)?.state.state;
    return query.deploymentStates.length === 0 || (state !== undefined && query.deploymentStates.includes(state));
  });
  const deployments = [...new Set(shown.map((r) => r.deploymentId))].flatMap((id) => {
    const d = derivedOf.get(id);
    return d ? [deploymentToProto(d.row, d.state)] : [];
  });
  const more = rows.length > query.pageSize;
  return create(ListLicensesResponseSchema, {
    licenses: shown.map((r) => licenseToProto(r, now, view)),
    deployments,
    nextPageToken: more ? encodePageToken(page[page.length - 1]!.id, query.tokenFilter) : "",
  });
}

/** What GetDeployment shows a caller beyond the deployment row. */
export interface DeploymentDetailView {
  /** How much of the licence and the certificate (licenseViewOf). */
  license: LicenseView;
  /** The heartbeat reader, or null when the caller may not see heartbeats (heartbeatVisibleTo). */
  heartbeats: HeartbeatStatusReader | null;
}

/**
 * One deployment with its state derived now, its current licence, its heartbeat (from the first
 * activation on) and the newest certificate issued to its box.
 */
export async function getDeployment(deps: LicensingDeps, req: GetDeploymentRequest, view: DeploymentDetailView): Promise<GetDeploymentResponse> {
  const deploymentId = requireId(req.deploymentId, "deployment_id");
  const em = deps.db.em();
  const now = deps.now();
  const row = await em.findOne(DeploymentEntity, { id: deploymentId }, { disableIdentityMap: true });
  if (!row) throw new DomainError("NOT_FOUND", `deployment ${deploymentId} does not exist`, { deploymentId });
  const [settings, license, certificate] = await Promise.all([
    loadSettings(em, now),
    row.licenseId ? loadLicense(em, row.licenseId) : null,
    em.findOne(CertificateEntity, { deploymentId }, { disableIdentityMap: true, orderBy: { issuedAt: "desc", serialNumber: "desc" } }),
  ]);
  // A certificate is recorded at every activation, so there is one from the first activation on,
  // also once a rebind cleared the activation.
  const everActivated = row.activatedAt !== null || certificate !== null;
  const [heartbeat] = view.heartbeats && everActivated ? await view.heartbeats.statusesOf(em, [row], now, settings) : [];
  return create(GetDeploymentResponseSchema, {
    deployment: deploymentToProto(row, deriveState(factsOf(row), now.getTime(), settings)),
    license: license ? licenseToProto(license, now, view.license) : undefined,
    heartbeat,
    certificate: certificate ? certificateToProto(certificate, view.license) : undefined,
  });
}

/**
 * A derived state as a condition on the fact columns: `deriveState` written as SQL. The order of
 * its checks is encoded by each state excluding what an earlier check already claimed. An
 * AIR_GAPPED row's silence is measured against air_gapped_lease instead of the grace window, and
 * it is never GRACE.
 */
export function deploymentStateCondition(state: DeploymentState, now: Date, settings: Settings): FilterQuery<DeploymentRow> {
  const graceCut = new Date(now.getTime() - settings.graceWindowMs);
  const airGappedCut = new Date(now.getTime() - settings.airGappedLeaseMs);
  const timeoutCut = new Date(now.getTime() - settings.heartbeatTimeoutMs);
  // "Last seen" is lastSeenAt, or the activation time for facts written before it.
  const silentSince = (cut: Date): FilterQuery<DeploymentRow> => ({
    $or: [{ lastSeenAt: { $lt: cut } }, { lastSeenAt: null, activatedAt: { $lt: cut } }],
  });
  const seenSince = (cut: Date): FilterQuery<DeploymentRow> => ({
    $or: [{ lastSeenAt: { $gte: cut } }, { lastSeenAt: null, activatedAt: { $gte: cut } }],
  });
  const airGapped: FilterQuery<DeploymentRow> = { connectivity: "AIR_GAPPED" };
  const online: FilterQuery<DeploymentRow> = { connectivity: { $ne: "AIR_GAPPED" } };
  // Silent past the lease's lifetime (grace window, or air_gapped_lease), and its negation.
  const outOfLease: FilterQuery<DeploymentRow> = {
    $or: [{ $and: [online, silentSince(graceCut)] }, { $and: [airGapped, silentSince(airGappedCut)] }],
  };
  const withinLease: FilterQuery<DeploymentRow> = {
    $or: [{ $and: [online, seenSince(graceCut)] }, { $and: [airGapped, seenSince(airGappedCut)] }],
  };
  const bound = { activatedAt: { $ne: null }, fingerprintHash: { $ne: null } };
  const live = { licenseRevokedAt: null, licenseExpiresAt: { $gt: now }, ...bound };
  switch (state) {
    case "LOCKED":
      return {
        $or: [
          { licenseRevokedAt: { $ne: null } },
          { licenseExpiresAt: { $lte: now } },
          // A live licence: with none issued yet the deployment is PENDING, however long silent.
          { $and: [live, outOfLease] },
        ],
      };
    case "PENDING":
      return {
        licenseRevokedAt: null,
        $or: [
          { licenseExpiresAt: null },
          { licenseExpiresAt: { $gt: now }, $or: [{ activatedAt: null }, { fingerprintHash: null }] },
        ],
      };
    case "SUSPENDED":
      return { $and: [live, withinLease, { subscriptionStatus: "INVALID" }] };
    case "GRACE":
      return { $and: [live, online, seenSince(graceCut), { subscriptionStatus: { $ne: "INVALID" } }, silentSince(timeoutCut)] };
    case "ACTIVE":
      return {
        $and: [
          live,
          { subscriptionStatus: { $ne: "INVALID" } },
          { $or: [{ $and: [online, seenSince(timeoutCut)] }, { $and: [airGapped, seenSince(airGappedCut)] }] },
        ],
      };
  }
}

/**
 * One keyset page of deployments (by id) matching every `where` condition and, when `states` is
 * given, any of those derived states at `now` — the state filter runs in SQL, so a page is a page.
 * The deployments screen and the heartbeats screen both page through this.
 */
export async function findDeploymentPage(
  em: ReturnType<LicensingDeps["db"]["em"]>,
  query: { where: FilterQuery<DeploymentRow>[]; states: readonly DeploymentState[]; afterId: string | null; pageSize: number },
  now: Date,
  settings: Settings,
): Promise<{ page: DeploymentRow[]; more: boolean }> {
  const where = [...query.where];
  if (query.states.length > 0) where.push({ $or: query.states.map((s) => deploymentStateCondition(s, now, settings)) });
  if (query.afterId) where.push({ id: { $gt: query.afterId } });
  const rows = await findRows<DeploymentRow>(em, DeploymentEntity, (where.length > 0 ? { $and: where } : {}) as FilterQuery<DeploymentRow>, {
    orderBy: { id: "asc" },
    limit: query.pageSize + 1,
  });
  return { page: rows.slice(0, query.pageSize), more: rows.length > query.pageSize };
}

/** A page of deployments, filtered by derived state and customer. */
export async function listDeployments(deps: LicensingDeps, req: ListDeploymentsRequest): Promise<ListDeploymentsResponse> {
  const query = validateListDeployments(req);
  const em = deps.db.em();
  const now = deps.now();
  const settings = await loadSettings(em, now);
  const { page, more } = await findDeploymentPage(em, { ...query, where: query.customer ? [{ customer: query.customer }] : [] }, now, settings);
  const derived = page.map((row) => ({ row, state: deriveState(factsOf(row), now.getTime(), settings) }));
  const shown = query.states.length > 0 ? derived.filter((d) => query.states.includes(d.state.state)) : derived;
  return create(ListDeploymentsResponseSchema, {
    deployments: shown.map((d) => deploymentToProto(d.row, d.state)),
    nextPageToken: more ? encodePageToken(page[page.length - 1]!.id, { states: query.states, customer: query.customer }) : "",
  });
}
