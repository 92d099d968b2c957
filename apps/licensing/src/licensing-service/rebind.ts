/**
 * RebindLicense — "moves a licence to a new fingerprint (for example, replacement hardware)".
 * The binding moves to the new fingerprint (or is cleared, so the next box to activate binds),
 * the deployment waits for the new box (PENDING), the old box is told to LOCK if connected, and
 * every certificate issued so far for the deployment is revoked: the old box's next mTLS call is
 * refused. The new box then activates with its fingerprint. Audited license.rebind.
 */
import { create } from "@bufbuild/protobuf";
import { rebind } from "@lcp/domain";
import {
  RebindLicenseResponseSchema,
  type RebindLicenseRequest,
  type RebindLicenseResponse,
} from "@lcp/proto/licensing/v1/licensing_service_pb";
import type { CallContext } from "../core/audit.js";
import { applyDeploymentChange } from "../core/deployment-change.js";
import type { LicensingDeps } from "../deps.js";
import { licenseToProto, type LicenseView } from "../mapping.js";
import { REBIND_REVOKE_REASON, revokeCertificates } from "../storage/repository.js";
import { assertStillCurrent, requireCurrentLicense } from "./current-license.js";
import { validateRebind } from "./validate.js";

/** Rebinds a licence; see the module comment. */
export async function rebindLicense(deps: LicensingDeps, call: CallContext, req: RebindLicenseRequest, view: LicenseView): Promise<RebindLicenseResponse> {
  const input = validateRebind(req);
  const license = await requireCurrentLicense(deps, input.licenseId);
  const result = await applyDeploymentChange(deps, {
    deploymentId: license.deploymentId,
    call,
    action: "license.rebind",
    decide(loaded) {
      assertStillCurrent(loaded, license.id);
      const verdict = rebind(loaded.facts, input.newFingerprintHash, input.reason);
      if (!verdict.ok) return verdict;
      return {
        facts: verdict.facts,
        audit: [
          {
            action: "license.rebind",
            resource: { type: "license", id: license.id },
            details: {
              deploymentId: license.deploymentId,
              reason: verdict.reason,
              previousFingerprintHash: verdict.previousFingerprintHash,
              newFingerprintHash: input.newFingerprintHash,
            },
          },
        ],
        directiveReason: `licence moved to another box: ${verdict.reason}`,
        write: async (em, now) => {
          await revokeCertificates(em, license.deploymentId, now, REBIND_REVOKE_REASON);
        },
      };
    },
  });
  return create(RebindLicenseResponseSchema, { license: licenseToProto(result.license!, result.deployment.updatedAt, view) });
}
