/**
 * `licensing.v1.ReconcileService` (internal: the fleet-sweep identity only, decided by the policy
 * table in libs/rpc before the handler runs). Validates the page request, checks the sweep's
 * `now` against server time, and hands the page to {@link reconcilePage}.
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { clampPageSize, formatDuration, plainTextProblem, type Settings, type Transition } from "@lcp/domain";
import { ReconcileResponseSchema, type ReconcileRequest, type ReconcileResponse, type ReconcileService } from "@lcp/proto/licensing/v1/reconcile_service_pb";
import {
  GetSweepScheduleResponseSchema,
  SplitFleetResponseSchema,
  TransitionCountSchema,
  type GetSweepScheduleResponse,
  type TransitionCount,
} from "@lcp/proto/licensing/v1/reconcile_service_pb";
import { TransitionSchema } from "@lcp/proto/licensing/v1/types_pb";
import { DomainError, lockReasonToProto, stateToProto } from "@lcp/rpc";
import { callContextOf, type CallContext } from "../core/audit.js";
import type { CoreDeps } from "../core/deployment-change.js";
import { SettingsEntity } from "../storage/entities.js";
import { loadSettings, SETTINGS_ID } from "../storage/repository.js";
import { codeOfState } from "./derivation-sql.js";
import { splitFleet } from "./split-fleet.js";
import type { AppliedTransition, ReconcileHooks, ReconcilePageInput, TalliedTransitions } from "./page-types.js";
import { RECONCILE_PAGE, reconcilePage } from "./reconcile-page.js";

/** The longest sweep id accepted (fleet-sweep's are UUIDs); it only labels audit events. */
export const MAX_SWEEP_ID_LENGTH = 128;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function invalid(field: string, message: string): DomainError {
  return new DomainError("INVALID_ARGUMENT", message, { field });
}

/**
 * Turns a request into a page to reconcile, or refuses it (InvalidArgument): page_size 1..50,000
 * (0 → 1,000), a cursor and an upper bound that are deployment ids, in that order, and a `now`
 * within max_clock_skew of server time — a sweep with a runaway clock must not lock the fleet
 * OFFLINE or EXPIRED ahead of time.
 */
export async function validateReconcile(deps: CoreDeps, req: ReconcileRequest, call: CallContext): Promise<ReconcilePageInput> {
  const size = clampPageSize(req.pageSize, RECONCILE_PAGE);
  if (!size.ok) throw invalid("page_size", size.message);
  if (req.afterDeploymentId !== "" && !UUID.test(req.afterDeploymentId)) {
    throw invalid("after_deployment_id", "after_deployment_id must be empty or a deployment id");
  }
  if (req.upToDeploymentId !== "") {
    if (!UUID.test(req.upToDeploymentId)) throw invalid("up_to_deployment_id", "up_to_deployment_id must be empty or a deployment id");
    if (req.upToDeploymentId <= req.afterDeploymentId) {
      throw invalid("up_to_deployment_id", "up_to_deployment_id must come after after_deployment_id (an empty range)");
    }
  }
  if (req.sweepId.length > MAX_SWEEP_ID_LENGTH) throw invalid("sweep_id", `sweep_id must be at most ${MAX_SWEEP_ID_LENGTH} characters`);
  // The sweep id goes into every transition's audit event: plain text only, like any text field.
  const sweepIdProblem = plainTextProblem("sweep_id", req.sweepId);
  if (sweepIdProblem) throw invalid("sweep_id", sweepIdProblem);
  const serverNow = deps.now();
  let at = serverNow;
  let settings: Settings | undefined;
  if (req.now) {
    at = timestampDate(req.now);
    settings = await loadSettings(deps.db.em(), serverNow);
    const skew = Math.abs(at.getTime() - serverNow.getTime());
    if (!Number.isFinite(skew) || skew > settings.maxClockSkewMs) {
      throw invalid(
        "now",
        `now is ${formatDuration(skew)} away from licensing's time, more than max_clock_skew (${formatDuration(settings.maxClockSkewMs)})`,
      );
    }
  }
  return {
    at,
    afterDeploymentId: req.afterDeploymentId,
    upToDeploymentId: req.upToDeploymentId,
    pageSize: size.pageSize,
    dryRun: req.dryRun,
    sweepId: req.sweepId,
    call,
    countsOnly: req.countsOnly,
    settings,
  };
}

/**
 * The page's transitions counted per kind (from, to, lock reason), in the order of the kinds'
 * state codes — the same order whether the page listed its rows or tallied them in SQL, so a dry
 * run and the real run of the same fleet report their kinds alike.
 */
function countTransitions(transitions: readonly AppliedTransition[], tallied: readonly TalliedTransitions[]): TransitionCount[] {
  const counts = new Map<string, TransitionCount>();
  const all = [...transitions.map(({ transition }) => ({ transition, count: 1 })), ...tallied];
  const order = (t: Transition) => codeOfState(t.from) * 8 + codeOfState(t.to);
  all.sort((a, b) => order(a.transition) - order(b.transition));
  for (const { transition, count } of all) {
    const key = `${transition.from.state}>${transition.to.state}:${transition.to.lockReason ?? ""}`;
    let entry = counts.get(key);
    if (!entry) {
      entry = create(TransitionCountSchema, {
        fromState: stateToProto(transition.from.state),
        toState: stateToProto(transition.to.state),
        lockReason: lockReasonToProto(transition.to.lockReason),
        count: 0,
      });
      counts.set(key, entry);
    }
    entry.count += count;
  }
  return [...counts.values()];
}

/** Reconciles one page and answers in proto terms (per-deployment entries unless `counts_only`). */
export async function reconcile(deps: CoreDeps, req: ReconcileRequest, call: CallContext, hooks?: ReconcileHooks): Promise<ReconcileResponse> {
  const input = await validateReconcile(deps, req, call);
  const result = await reconcilePage(deps, input, hooks);
  return create(ReconcileResponseSchema, {
    examined: result.examined,
    conflicts: result.conflicts,
    nextAfterDeploymentId: result.nextAfterDeploymentId,
    counts: countTransitions(result.transitions, result.tallied),
    transitions: req.countsOnly
      ? []
      : result.transitions.map(({ deploymentId, transition }) =>
          create(TransitionSchema, {
            deploymentId,
            fromState: stateToProto(transition.from.state),
            toState: stateToProto(transition.to.state),
            lockReason: lockReasonToProto(transition.to.lockReason),
          }),
        ),
  });
}

/**
 * GetSweepSchedule: the stored sweep_interval, unset when no settings row is stored yet (the
 * defaults are not a decision, so fleet-sweep keeps its own SWEEP_INTERVAL then).
 */
export async function getSweepSchedule(deps: CoreDeps): Promise<GetSweepScheduleResponse> {
  const row = await deps.db.em().findOne(SettingsEntity, { id: SETTINGS_ID }, { disableIdentityMap: true, fields: ["sweepIntervalMs"] });
  return create(GetSweepScheduleResponseSchema, row ? { sweepInterval: durationFromMs(Number(row.sweepIntervalMs)) } : {});
}

/** Builds the ReconcileService handlers for app.ts. */
export function createReconcileService(deps: CoreDeps): ServiceImpl<typeof ReconcileService> {
  return {
    reconcile: (req, ctx) => reconcile(deps, req, callContextOf(ctx)),
    splitFleet: async (req) => create(SplitFleetResponseSchema, { boundaries: await splitFleet(deps.db.em(), deps.db.driver, req.parts) }),
    getSweepSchedule: () => getSweepSchedule(deps),
  };
}
