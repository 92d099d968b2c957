/**
 * Stored sweep runs ↔ `fleet.v1` messages: the one place a report becomes a SweepRun.
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { SweepRunSchema, SweepStatus, SweepTrigger, type SweepRun } from "@lcp/proto/fleet/v1/fleet_sweep_service_pb";
import { TransitionSchema } from "@lcp/proto/licensing/v1/types_pb";
import { lockReasonToProto as lockReasonOf, stateToProto as stateOf } from "@lcp/rpc";
import type { SweepRunView } from "../storage/sweep-store.js";

/** A stored run as the `fleet.v1.SweepRun` message. */
export function sweepRunToProto(run: SweepRunView): SweepRun {
  return create(SweepRunSchema, {
    id: run.id,
    trigger: run.trigger === "SCHEDULED" ? SweepTrigger.SCHEDULED : SweepTrigger.ON_DEMAND,
    dryRun: run.dryRun,
    status: run.status === "RUNNING" ? SweepStatus.RUNNING : run.status === "SUCCEEDED" ? SweepStatus.SUCCEEDED : SweepStatus.FAILED,
    startTime: timestampFromDate(run.startedAt),
    ...(run.finishedAt
      ? {
          finishTime: timestampFromDate(run.finishedAt),
          duration: durationFromMs(Math.max(0, run.finishedAt.getTime() - run.startedAt.getTime())),
        }
      : {}),
    examined: BigInt(run.examined),
    transitions: run.transitions.map((t) => ({
      fromState: stateOf(t.from),
      toState: stateOf(t.to),
      lockReason: lockReasonOf(t.lockReason),
      count: BigInt(t.count),
    })),
    conflicts: BigInt(run.conflicts),
    failures: BigInt(run.failures),
    error: run.error ?? "",
    planned: (run.planned ?? []).map((p) =>
      create(TransitionSchema, {
        deploymentId: p.deploymentId,
        fromState: stateOf(p.from),
        toState: stateOf(p.to),
        lockReason: lockReasonOf(p.lockReason),
      }),
    ),
    requestedBy: run.requestedBy,
  });
}
