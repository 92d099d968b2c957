/**
 * A deployment's heartbeat as the operator screens show it (HeartbeatStatus): last seen and lag,
 * whether a stream is held and by which replica, the agent version the box reported, the lease
 * seq and the directives it has not acknowledged. ListHeartbeats shows it for a page of
 * deployments, GetDeployment for one; both read it here, with three set-based reads per call.
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { deriveState, type Settings } from "@lcp/domain";
import { HeartbeatStatusSchema, type HeartbeatStatus } from "@lcp/proto/licensing/v1/types_pb";
import { stateToProto } from "@lcp/rpc";
import type { EntityManager } from "@mikro-orm/knex";
import { LicenseEntity, type DeploymentRow } from "../storage/entities.js";
import { HeartbeatPresenceEntity } from "../storage/presence-entity.js";
import { factsOf } from "../storage/repository.js";

/** What the status needs of the stream hub: this replica's name and the streams it holds. */
export interface HeldStreams {
  readonly replicaId: string;
  held(deploymentId: string): number;
}

/** Reads heartbeat statuses; the heartbeat module hands one to the LicensingService handlers. */
export interface HeartbeatStatusReader {
  /** The status of each row (same order), its state derived at `now` under `settings`. */
  statusesOf(em: EntityManager, rows: readonly DeploymentRow[], now: Date, settings: Settings): Promise<HeartbeatStatus[]>;
}

/** A reader over this replica's hub. */
export function createHeartbeatStatusReader(hub: HeldStreams): HeartbeatStatusReader {
  return { statusesOf: (em, rows, now, settings) => heartbeatStatusesOf(hub, em, rows, now, settings) };
}

/** The heartbeat status of each row, in order: three set-based reads for all of them, never one per row. */
export async function heartbeatStatusesOf(
  hub: HeldStreams,
  em: EntityManager,
  rows: readonly DeploymentRow[],
  now: Date,
  settings: Settings,
): Promise<HeartbeatStatus[]> {
  if (rows.length === 0) return [];
  const ids = rows.map((r) => r.id);
  const licenseIds = rows.map((r) => r.licenseId).filter((id): id is string => id !== null);
  const [presence, licenses, pending] = await Promise.all([
    em.find(HeartbeatPresenceEntity, { deploymentId: { $in: ids } }, { disableIdentityMap: true, orderBy: { connectedAt: "desc" } }),
    licenseIds.length ? em.find(LicenseEntity, { id: { $in: licenseIds } }, { disableIdentityMap: true, fields: ["id", "leaseSeq"] }) : [],
    em
      .getConnection()
      .execute<{ deployment_id: string; n: number | string }[]>(
        `select deployment_id, count(*) as n from directive where acked_at is null and deployment_id in (${ids.map(() => "?").join(", ")}) group by deployment_id`,
        ids,
      ),
  ]);
  const replicaOf = new Map<string, string>();
  for (const p of presence) if (!replicaOf.has(p.deploymentId)) replicaOf.set(p.deploymentId, p.replica);
  const seqOf = new Map(licenses.map((l) => [l.id, l.leaseSeq]));
  const pendingOf = new Map(pending.map((p) => [p.deployment_id, Number(p.n)]));

  return rows.map((row) => {
    const derived = deriveState(factsOf(row), now.getTime(), settings);
    const lastSeen = row.lastSeenAt ?? null;
    const lagMs = lastSeen ? Math.max(0, now.getTime() - lastSeen.getTime()) : null;
    // A presence row outlives a replica that died; a box silent past the timeout is not connected.
    // This is about the stream, not the state (that is `derived`, air-gapped or not): an
    // air-gapped box holds no stream, so it shows no replica unless it did connect and beat.
    const fresh = lagMs !== null && lagMs <= settings.heartbeatTimeoutMs;
    const local = hub.held(row.id) > 0;
    const replica = local ? hub.replicaId : fresh ? (replicaOf.get(row.id) ?? "") : "";
    return create(HeartbeatStatusSchema, {
      deploymentId: row.id,
      licenseId: row.licenseId ?? "",
      state: stateToProto(derived.state),
      lastSeenTime: lastSeen ? timestampFromMs(lastSeen.getTime()) : undefined,
      lag: lagMs === null ? undefined : durationFromMs(lagMs),
      connected: replica !== "",
      replica,
      agentVersion: row.agentVersion ?? "",
      leaseSeq: BigInt(row.licenseId ? (seqOf.get(row.licenseId) ?? 0) : 0),
      pendingDirectives: pendingOf.get(row.id) ?? 0,
    });
  });
}
