/**
 * RevokeLicense — "denies future activation and locks the deployment": the remote anti-theft /
 * decommission lever. The licence is revoked for ever, the deployment goes LOCKED(REVOKED), a LOCK
 * directive is queued (and pushed if the box is connected), and every certificate of the
 * deployment is revoked so the box's next mTLS call is refused. Audited license.revoke (and the
 * transition deployment.lock) in the same transaction.
 */
import { create } from "@bufbuild/protobuf";
import { revoke } from "@lcp/domain";
import {
  RevokeLicenseResponseSchema,
  type RevokeLicenseRequest,
  type RevokeLicenseResponse,
} from "@lcp/proto/licensing/v1/licensing_service_pb";
import type { CallContext } from "../core/audit.js";
import { applyDeploymentChange } from "../core/deployment-change.js";
import type { LicensingDeps } from "../deps.js";
import { deploymentToProto, licenseToProto, type LicenseView } from "../mapping.js";
import { revokeCertificates } from "../storage/repository.js";
import { assertStillCurrent, requireCurrentLicense } from "./current-license.js";
import { validateRevoke } from "./validate.js";

/** Revokes a licence; see the module comment. */
export async function revokeLicense(deps: LicensingDeps, call: CallContext, req: RevokeLicenseRequest, view: LicenseView): Promise<RevokeLicenseResponse> {
  const input = validateRevoke(req);
  const license = await requireCurrentLicense(deps, input.licenseId);
  const result = await applyDeploymentChange(deps, {
    deploymentId: license.deploymentId,
    call,
    action: "license.revoke",
    decide(loaded) {
      assertStillCurrent(loaded, license.id);
      const verdict = revoke(loaded.facts, loaded.now.getTime(), input.reason);
      if (!verdict.ok) return verdict;
      return {
        facts: verdict.facts,
        revokedAt: new Date(verdict.revokedAt),
        license: { revokeReason: verdict.reason },
        audit: [
          {
            action: "license.revoke",
            resource: { type: "license", id: license.id },
            details: { deploymentId: license.deploymentId, reason: verdict.reason },
          },
        ],
        directiveReason: `licence revoked: ${verdict.reason}`,
        write: async (em, now) => {
          await revokeCertificates(em, license.deploymentId, now, "licence revoked");
        },
      };
    },
  });
  return create(RevokeLicenseResponseSchema, {
    license: licenseToProto(result.license!, result.deployment.updatedAt, view),
    deployment: deploymentToProto(result.deployment, result.derived),
  });
}
