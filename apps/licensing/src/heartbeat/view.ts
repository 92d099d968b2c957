/**
 * What a heartbeat session keeps of its deployment between beats (the {@link View}), and the
 * judgement of a beat on it: in memory on the cached facts, or through the one change path when
 * the derived state changes. Shared by the held stream and the unary SendHeartbeat.
 */
import { beatLeaseDue, heartbeat, judgeBeat, type BeatJudgement, type DeploymentFacts, type DerivedState } from "@lcp/domain";
import type { CallContext } from "../core/audit.js";
import { applyDeploymentChange, type Loaded } from "../core/deployment-change.js";
import { storedStateOf } from "../storage/repository.js";
import type { HeartbeatContext } from "./context.js";

/**
 * What a session keeps of its deployment between beats (small: one per held stream). The
 * activation time the pending directives are read from is `facts.activatedAt`.
 */
export interface View {
  facts: DeploymentFacts;
  /** One of a few shared objects ({@link sharedState}). */
  stored: DerivedState;
  leaseSeq: number;
  leaseIssuedAt: number | null;
  /** The deployment row's version the facts were read at (compare-and-set counter). */
  version: number;
}

export function viewOf(loaded: Pick<Loaded, "deployment" | "license" | "facts">): View {
  return {
    facts: loaded.facts,
    stored: sharedState(storedStateOf(loaded.deployment)),
    leaseSeq: loaded.license?.leaseSeq ?? 0,
    leaseIssuedAt: loaded.license?.leaseIssuedAt?.getTime() ?? null,
    version: loaded.deployment.version,
  };
}

// The stored states of all held streams are a handful of distinct values: one object each.
const sharedStates = new Map<string, DerivedState>();
function sharedState(state: DerivedState): DerivedState {
  const key = `${state.state}/${state.lockReason ?? ""}`;
  let shared = sharedStates.get(key);
  if (!shared) sharedStates.set(key, (shared = Object.freeze({ state: state.state, lockReason: state.lockReason })));
  return shared;
}

/** The date pending directives are read from: the current box's activation (`loadPendingDirectives`). */
export function sinceOf(view: View): Date | null {
  return view.facts.activatedAt === null ? null : new Date(view.facts.activatedAt);
}

/** The beat judged on a view: the domain's judgement on the cached facts, with the hub's settings. */
export function judge(view: View, fingerprintHash: string, nowMs: number, ctx: HeartbeatContext): BeatJudgement {
  return judgeBeat(view.facts, view.stored, fingerprintHash, nowMs, ctx.hub.settings());
}

/** Whether the box of a view, now in state `derived`, is due a new lease. */
export function leaseDue(view: View, derived: DerivedState, nowMs: number, ctx: HeartbeatContext): boolean {
  return beatLeaseDue({ stored: view.stored, seq: view.leaseSeq, issuedAt: view.leaseIssuedAt }, derived, nowMs, ctx.hub.settings());
}

/** Runs a heartbeat through the change path (a beat that changes the derived state). */
export async function changeThroughCore(ctx: HeartbeatContext, call: CallContext, deploymentId: string, fingerprintHash: string) {
  return applyDeploymentChange(ctx.deps, {
    deploymentId,
    call,
    action: "heartbeat",
    decide(loaded) {
      const verdict = heartbeat(loaded.facts, fingerprintHash, loaded.now.getTime());
      if (!verdict.ok) return verdict;
      return { facts: verdict.facts, audit: [], skipIfUnchanged: true };
    },
  });
}
