/**
 * The unary SendHeartbeat: the stream's rules, one beat per call, for boxes that cannot hold a
 * stream; pending directives (and a due lease) come back in the answer instead of being pushed.
 */
import type { DerivedState } from "@lcp/domain";
import type { Directive } from "@lcp/proto/licensing/v1/types_pb";
import { DomainError, type AppliancePrincipal } from "@lcp/rpc";
import type { CallContext } from "../core/audit.js";
import { invalid } from "../validation.js";
import { DeploymentEntity } from "../storage/entities.js";
import { factsOf } from "../storage/repository.js";
import type { HeartbeatContext } from "./context.js";
import { ackDirectives, catchUpLeaseSeq, renewLease } from "./directive-store.js";
import { ephemeralLock, keySync, open, pendingFor, type HelloInput } from "./hello.js";
import { changeThroughCore, judge, leaseDue, sinceOf, viewOf } from "./view.js";

/** The unary SendHeartbeat: the same rules as the stream, one beat per call, pending directives in the answer. */
export async function unaryHeartbeat(
  ctx: HeartbeatContext,
  principal: AppliancePrincipal,
  call: CallContext,
  input: HelloInput,
  ackedIds: readonly string[],
): Promise<{ now: Date; derived: DerivedState; directives: Directive[] }> {
  const { deps } = ctx;
  if (ackedIds.length > ctx.limits.maxAckIds) throw invalid("acked_directive_ids", `at most ${ctx.limits.maxAckIds} ids per call`);
  const opened = await open(ctx, principal, input);
  const now = deps.now();
  if (!opened.ok) {
    // The box must stop; the answer is the LOCK itself (a unary call cannot push, then fail).
    return { now, derived: { state: "LOCKED", lockReason: opened.code === "LICENSE_EXPIRED" ? "EXPIRED" : opened.code === "LICENSE_REVOKED" ? "REVOKED" : null }, directives: [ephemeralLock(opened.message, now)] };
  }
  const { loaded } = opened;
  const deploymentId = loaded.deployment.id;
  const valid = ackedIds.filter((id) => /^[0-9a-f-]{36}$/i.test(id));
  if (valid.length > 0) await ackDirectives(deps.db.em(), deploymentId, valid, now);
  let view = viewOf(loaded);
  if (loaded.license && input.lastLeaseSeq > view.leaseSeq) {
    view = { ...view, leaseSeq: await catchUpLeaseSeq(deps, loaded.license.id, deploymentId, view.leaseSeq, input.lastLeaseSeq) };
  }
  const verdict = judge(view, input.fingerprintHash, now.getTime(), ctx);
  let derived: DerivedState;
  if (verdict.kind === "refused") throw new DomainError(verdict.code, verdict.message);
  if (verdict.kind === "change") {
    const result = await changeThroughCore(ctx, call, deploymentId, input.fingerprintHash);
    view = viewOf({ deployment: result.deployment, license: result.license, facts: factsOf(result.deployment) });
    derived = result.derived;
  } else {
    derived = verdict.derived;
    ctx.writer.seen(deploymentId, now.getTime());
  }
  if (input.agentVersion && input.agentVersion !== loaded.deployment.agentVersion) {
    await deps.db.em().nativeUpdate(DeploymentEntity, { id: deploymentId }, { agentVersion: input.agentVersion });
  }
  let pending = await pendingFor(ctx, deploymentId, sinceOf(view), input.lastLeaseSeq);
  const { refresh, carriesLease } = keySync(ctx, input, pending);
  pending = [...refresh, ...pending];
  if (leaseDue(view, derived, now.getTime(), ctx) || (!carriesLease && input.lastLeaseSeq < view.leaseSeq)) {
    const renewed = await renewLease(deps, deploymentId, "lease renewal");
    if (renewed) pending = [...pending, renewed.directive];
  }
  return { now, derived, directives: pending };
}
