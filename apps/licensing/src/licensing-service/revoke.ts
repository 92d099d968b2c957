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
import { DomainError } from "@lcp/rpc";
import type { CallContext } from "../core/audit.js";
import { applyDeploymentChange, type Loaded } from "../core/deployment-change.js";
import type { LicensingDeps } from "../deps.js";
import { deploymentToProto, licenseToProto, type LicenseView } from "../mapping.js";
import type { LicenseRow } from "../storage/entities.js";
import { loadLicense, revokeCertificates } from "../storage/repository.js";
import { validateRevoke } from "./validate.js";

/**
 * Loads the licence a command names and checks it is its deployment's current one. A superseded
 * licence is refused (LICENSE_SUPERSEDED): the binding moved to the newer licence, which is the one
 * to revoke or rebind.
 */
export async function requireCurrentLicense(deps: LicensingDeps, licenseId: string): Promise<LicenseRow> {
  const license = await loadLicense(deps.db.em(), licenseId);
  if (!license) throw new DomainError("NOT_FOUND", `licence ${licenseId} does not exist`, { licenseId });
  if (license.supersededBy && !license.revokedAt) {
    throw new DomainError(
      "LICENSE_SUPERSEDED",
      `licence ${licenseId} was superseded by licence ${license.supersededBy}; act on that one`,
      { licenseId, supersededBy: license.supersededBy },
    );
  }
  return license;
}

/** Re-checked inside each decision: a concurrent IssueLicense may have superseded the licence meanwhile. */
export function assertStillCurrent(loaded: Loaded, licenseId: string): void {
  if (loaded.deployment.licenseId !== licenseId) {
    throw new DomainError("LICENSE_SUPERSEDED", `licence ${licenseId} was superseded by a newer licence of its deployment`, {
      licenseId,
    });
  }
}

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
