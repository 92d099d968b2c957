/** A sweep run's report in words: status, trigger, transitions "from → to", totals. */
import { SweepStatus, SweepTrigger } from "@lcp/proto/fleet/v1/fleet_sweep_service_pb";
import { DeploymentState, LockReason } from "@lcp/proto/licensing/v1/types_pb";
import { LOCK_REASON_LABELS, STATE_LABELS } from "./format.js";

/** Sweep statuses in words. */
export const SWEEP_STATUS_LABELS: Readonly<Record<SweepStatus, string>> = {
  [SweepStatus.UNSPECIFIED]: "Unknown",
  [SweepStatus.RUNNING]: "Running",
  [SweepStatus.SUCCEEDED]: "Succeeded",
  [SweepStatus.FAILED]: "Failed",
};

/** Sweep triggers in words. */
export const SWEEP_TRIGGER_LABELS: Readonly<Record<SweepTrigger, string>> = {
  [SweepTrigger.UNSPECIFIED]: "Unknown",
  [SweepTrigger.ON_DEMAND]: "On demand",
  [SweepTrigger.SCHEDULED]: "Scheduled",
};

function stateWords(state: DeploymentState, lockReason: LockReason): string {
  const label = STATE_LABELS[state] ?? `Unknown (${String(state)})`;
  const reason = state === DeploymentState.LOCKED ? LOCK_REASON_LABELS[lockReason] : "";
  return reason ? `${label} (${reason})` : label;
}

/**
 * A transition in words, "Active → Locked (offline)". The lock reason a sweep records is the
 * new state's, so it qualifies the right-hand side only.
 */
export function transitionText(from: DeploymentState, to: DeploymentState, lockReason: LockReason): string {
  return `${stateWords(from, LockReason.UNSPECIFIED)} → ${stateWords(to, lockReason)}`;
}

/** The sum of a run's transition counts. */
export function transitionTotal(transitions: ReadonlyArray<{ readonly count: bigint | number }>): number {
  return transitions.reduce((n, t) => n + Number(t.count), 0);
}

/** "Dry run" or "Sweep": what kind of run it was. */
export function runKindText(dryRun: boolean): string {
  return dryRun ? "Dry run" : "Sweep";
}
