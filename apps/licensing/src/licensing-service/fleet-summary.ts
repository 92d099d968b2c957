/**
 * GetFleetSummary (screen licensing/heartbeats): how many deployments are in each derived state
 * right now, lock reason included, counted by the database over the whole table in one GROUP BY
 * of the sweep's own derivation (`derivedCodeSql`) — never by paging, and never from the stored
 * state, which is only as fresh as the last sweep. The same count feeds the
 * `licensing_deployments` gauge (fleet-metrics.ts).
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { DerivedState } from "@lcp/domain";
import { FleetStateCountSchema, GetFleetSummaryResponseSchema, type GetFleetSummaryResponse } from "@lcp/proto/licensing/v1/licensing_service_pb";
import { lockReasonToProto, stateToProto } from "@lcp/rpc";
import type { LicensingDeps } from "../deps.js";
import { derivedCodeSql, stateOfCode } from "../reconcile/derivation-sql.js";
import { loadSettings } from "../storage/repository.js";

/** Deployments in one derived state. */
export interface FleetStateCount {
  readonly code: number;
  readonly state: DerivedState;
  readonly count: number;
}

/** The fleet by derived state at `now`, in state-code order; states without deployments are left out. */
export async function countFleetByState(deps: Pick<LicensingDeps, "db">, now: Date): Promise<FleetStateCount[]> {
  const em = deps.db.em();
  const settings = await loadSettings(em, now);
  const derived = derivedCodeSql("d", now, settings, deps.db.driver === "postgresql");
  const rows = await em
    .getConnection()
    .execute<{ t: number | string; n: number | string }[]>(`select ${derived.sql} as t, count(*) as n from deployment d group by 1`, derived.params, "all");
  return rows
    .map((r) => {
      const state = stateOfCode(Number(r.t));
      // derivedCodeSql yields a state's code for every row; anything else is a bug, said loudly.
      if (!state) throw new Error(`fleet summary: the derivation returned unknown state code ${String(r.t)}`);
      return { code: Number(r.t), state, count: Number(r.n) };
    })
    .sort((a, b) => a.code - b.code);
}

/** The fleet by derived state at `deps.now()`; states without deployments are left out (zero). */
export async function getFleetSummary(deps: LicensingDeps): Promise<GetFleetSummaryResponse> {
  const now = deps.now();
  const counts = await countFleetByState(deps, now);
  return create(GetFleetSummaryResponseSchema, {
    counts: counts.map((c) =>
      create(FleetStateCountSchema, { state: stateToProto(c.state.state), lockReason: lockReasonToProto(c.state.lockReason), count: BigInt(c.count) }),
    ),
    total: BigInt(counts.reduce((n, c) => n + c.count, 0)),
    countTime: timestampFromDate(now),
  });
}
