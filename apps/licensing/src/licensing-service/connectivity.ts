/**
 * SetConnectivity — switches a deployment between ONLINE and AIR_GAPPED (docs/design.md §15).
 * Only the fact changes: the binding, the last seen time and the licence (its lease seq included)
 * carry on. The state is re-derived with the new measure of silence, so switching may be a
 * transition (an air-gapped box silent past the grace window is LOCKED(OFFLINE) once switched
 * online), recorded and audited like any other. Audited deployment.connectivity {from, to,
 * reason}; switching to what it already is changes nothing and records nothing.
 */
import { create } from "@bufbuild/protobuf";
import { deriveState, setConnectivity as setConnectivityFact } from "@lcp/domain";
import {
  SetConnectivityResponseSchema,
  type SetConnectivityRequest,
  type SetConnectivityResponse,
} from "@lcp/proto/licensing/v1/licensing_service_pb";
import type { CallContext } from "../core/audit.js";
import { applyDeploymentChange, loadForDecision } from "../core/deployment-change.js";
import type { LicensingDeps } from "../deps.js";
import { deploymentToProto } from "../mapping.js";
import { validateSetConnectivity } from "./validate.js";

/** Sets a deployment's connectivity; see the module comment. */
export async function setConnectivity(deps: LicensingDeps, call: CallContext, req: SetConnectivityRequest): Promise<SetConnectivityResponse> {
  const input = validateSetConnectivity(req);
  const airGapped = input.connectivity === "AIR_GAPPED";
  const initial = await loadForDecision(deps, input.deploymentId);
  // Already so: nothing is written, not even a re-derivation (the sweep's job).
  if (initial.facts.airGapped === airGapped) {
    return create(SetConnectivityResponseSchema, {
      deployment: deploymentToProto(initial.deployment, deriveState(initial.facts, initial.now.getTime(), initial.settings)),
    });
  }
  const result = await applyDeploymentChange(deps, {
    deploymentId: input.deploymentId,
    call,
    action: "deployment.connectivity",
    initial,
    decide(loaded) {
      const verdict = setConnectivityFact(loaded.facts, airGapped);
      if (!verdict.ok) return verdict;
      const from = loaded.facts.airGapped ? "AIR_GAPPED" : "ONLINE";
      return {
        facts: verdict.facts,
        audit: verdict.changed
          ? [
              {
                action: "deployment.connectivity",
                resource: { type: "deployment", id: loaded.deployment.id },
                details: { from, to: input.connectivity, reason: input.reason },
              },
            ]
          : [],
        directiveReason: `connectivity set to ${input.connectivity}: ${input.reason}`,
        // A concurrent switch got there first (a re-decision): nothing to write.
        skipIfUnchanged: !verdict.changed,
      };
    },
  });
  return create(SetConnectivityResponseSchema, { deployment: deploymentToProto(result.deployment, result.derived) });
}
