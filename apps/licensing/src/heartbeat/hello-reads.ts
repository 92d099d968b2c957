/**
 * The reads a heartbeat hello makes — its licence, its deployment, the deployment's pending
 * directives — batched per event-loop turn (storage/repository.ts `batchedRead`; README
 * "Heartbeat transport"). After a restart 10,000 boxes say hello within a minute, hundreds in one
 * turn: every hello of the turn waits for the turn's ONE `… where id in (…)` statement of each
 * kind instead of making its own three.
 *
 * Each hello gets what the single read would have returned: the same rows by the same keys, read
 * after it asked, and the pending directives filtered by activation time and capped per
 * deployment exactly as `loadPendingDirectives` does. A failed statement fails each of its hellos.
 */
import type { Database } from "@lcp/persistence";
import { DeploymentEntity, DirectiveEntity, LicenseEntity, type DeploymentRow, type DirectiveRow, type LicenseRow } from "../storage/entities.js";
import { batchedRead } from "../storage/repository.js";
import { PENDING_DIRECTIVES_LIMIT } from "./directive-store.js";

/** The hello's reads; each answers as the single read of the same name would. */
export interface HelloReads {
  /** The licence by id (any status), or null (`loadLicense`). */
  license(id: string): Promise<LicenseRow | null>;
  /** The deployment by id, or null. */
  deployment(id: string): Promise<DeploymentRow | null>;
  /** The deployment's unacknowledged directives written at or after `since`, oldest first, at most 100 (`loadPendingDirectives`). */
  pending(deploymentId: string, since: Date | null): Promise<DirectiveRow[]>;
}

/** Creates the batched reads on `db` (one per heartbeat module). */
export function createHelloReads(db: Database): HelloReads {
  const byId = <T extends { id: string }>(rows: readonly T[]) => new Map(rows.map((r) => [r.id, r]));
  const license = batchedRead((ids) => db.em().find(LicenseEntity, { id: { $in: ids } }, { disableIdentityMap: true }).then(byId));
  const deployment = batchedRead((ids) => db.em().find(DeploymentEntity, { id: { $in: ids } }, { disableIdentityMap: true }).then(byId));
  const pending = batchedRead(async (deploymentIds) => {
    const rows = await db.em().find(
      DirectiveEntity,
      { deploymentId: { $in: deploymentIds }, ackedAt: null },
      { orderBy: { id: "asc" }, disableIdentityMap: true },
    );
    const of = new Map<string, DirectiveRow[]>();
    for (const row of rows) {
      const list = of.get(row.deploymentId);
      if (list) list.push(row);
      else of.set(row.deploymentId, [row]);
    }
    return of;
  });
  return {
    license: async (id) => (await license(id)) ?? null,
    deployment: async (id) => (await deployment(id)) ?? null,
    async pending(deploymentId, since) {
      const rows = (await pending(deploymentId)) ?? [];
      // The deployment's rows are shared by every hello of the turn: each gets its own filtered copy.
      const from = since?.getTime() ?? -Infinity;
      const out: DirectiveRow[] = [];
      for (const row of rows) {
        if (row.createdAt.getTime() < from) continue;
        out.push(row);
        if (out.length === PENDING_DIRECTIVES_LIMIT) break;
      }
      return out;
    },
  };
}
