/**
 * IssueLicense — "Choose New license": a new licence for an existing deployment, signed through
 * signing-keys before the transaction opens, audited license.issue.
 *
 * Decision: a deployment has one current licence. Issuing a new one SUPERSEDES the previous one
 * (status SUPERSEDED; its token no longer activates) and carries the binding over, so a running
 * box keeps running on the new term. A revoked deployment cannot be issued a new licence
 * (LICENSE_REVOKED): revocation is for ever, a new licence means provisioning a new deployment.
 */
import { create } from "@bufbuild/protobuf";
import { issueLicense, type Refusal } from "@lcp/domain";
import {
  IssueLicenseResponseSchema,
  type IssueLicenseRequest,
  type IssueLicenseResponse,
} from "@lcp/proto/licensing/v1/licensing_service_pb";
import { DomainError } from "@lcp/rpc";
import { v7 as uuidv7 } from "uuid";
import type { CallContext } from "../core/audit.js";
import { applyDeploymentChange, loadForDecision } from "../core/deployment-change.js";
import { signLicense } from "../core/signer.js";
import type { LicensingDeps } from "../deps.js";
import { licenseToProto, type LicenseView } from "../mapping.js";
import { newLicenseRow } from "./license-row.js";
import { validateIssue } from "./validate.js";

function refusalError(r: Refusal): DomainError {
  return new DomainError(r.code, r.message, r.field ? { field: r.field } : {});
}

/** Issues a licence for a deployment, superseding its current one. */
export async function issueLicenseFor(deps: LicensingDeps, call: CallContext, req: IssueLicenseRequest, view: LicenseView): Promise<IssueLicenseResponse> {
  const now = deps.now();
  const input = validateIssue(req, now);
  // Refuse before signing: a revoked deployment must not cost a signature, nor leave a token behind.
  const before = await loadForDecision(deps, input.deploymentId, now);
  const precheck = issueLicense(before.facts, input.expiresAt.getTime(), now.getTime());
  if (!precheck.ok) throw refusalError(precheck);

  const licenseId = uuidv7({ msecs: now.getTime() });
  const signed = await signLicense(deps.signer, {
    licenseId,
    deploymentId: input.deploymentId,
    entitlements: input.entitlements,
    notBefore: now,
    expiresAt: input.expiresAt,
  });

  const result = await applyDeploymentChange(deps, {
    deploymentId: input.deploymentId,
    call,
    action: "license.issue",
    initial: before,
    decide(loaded) {
      const verdict = issueLicense(loaded.facts, input.expiresAt.getTime(), loaded.now.getTime());
      if (!verdict.ok) return verdict;
      const previous = loaded.license;
      const newLicense = newLicenseRow({
        id: licenseId,
        deploymentId: loaded.deployment.id,
        customer: loaded.deployment.customer,
        entitlements: input.entitlements,
        signed,
        issuedAt: now,
        expiresAt: input.expiresAt,
        previous,
      });
      return {
        facts: verdict.facts,
        newLicense,
        audit: [
          {
            action: "license.issue",
            resource: { type: "license", id: licenseId },
            details: {
              deploymentId: loaded.deployment.id,
              entitlements: input.entitlements,
              expiresAt: input.expiresAt.toISOString(),
              kid: signed.kid,
              supersedes: previous?.id ?? null,
            },
          },
        ],
        directiveReason: "a new licence term was issued",
      };
    },
  });
  return create(IssueLicenseResponseSchema, { license: licenseToProto(result.license!, now, view) });
}
