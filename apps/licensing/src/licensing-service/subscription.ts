/**
 * SetSubscriptionStatus — "an invalid subscription drives it to suspended; restoring the
 * subscription reactivates it." INVALID on an active deployment moves it to SUSPENDED (SUSPEND
 * directive with a SUSPENDED lease); VALID moves it back (REACTIVATE with an ACTIVE lease).
 * Audited subscription.update, and the transition deployment.suspend / deployment.reactivate.
 */
import { create } from "@bufbuild/protobuf";
import { setSubscription } from "@lcp/domain";
import {
  SetSubscriptionStatusResponseSchema,
  type SetSubscriptionStatusRequest,
  type SetSubscriptionStatusResponse,
} from "@lcp/proto/licensing/v1/licensing_service_pb";
import type { CallContext } from "../core/audit.js";
import { applyDeploymentChange } from "../core/deployment-change.js";
import type { LicensingDeps } from "../deps.js";
import { deploymentToProto } from "../mapping.js";
import { validateSubscription } from "./validate.js";

/** Sets a deployment's subscription status; see the module comment. */
export async function setSubscriptionStatus(
  deps: LicensingDeps,
  call: CallContext,
  req: SetSubscriptionStatusRequest,
): Promise<SetSubscriptionStatusResponse> {
  const input = validateSubscription(req);
  const valid = input.status === "VALID";
  const result = await applyDeploymentChange(deps, {
    deploymentId: input.deploymentId,
    call,
    action: "subscription.update",
    decide(loaded) {
      const verdict = setSubscription(loaded.facts, valid);
      if (!verdict.ok) return verdict;
      return {
        facts: verdict.facts,
        deployment: { subscriptionReason: input.reason || null, subscriptionChangedAt: loaded.now },
        audit: [
          {
            action: "subscription.update",
            resource: { type: "deployment", id: loaded.deployment.id },
            details: { status: input.status, reason: input.reason, changed: verdict.changed },
          },
        ],
        directiveReason: valid ? "the subscription was restored" : `the subscription is invalid${input.reason ? `: ${input.reason}` : ""}`,
      };
    },
  });
  return create(SetSubscriptionStatusResponseSchema, { deployment: deploymentToProto(result.deployment, result.derived) });
}
