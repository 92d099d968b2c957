/**
 * ProvisionDeployment — "For on-prem, a licence can be auto-issued during provisioning": creates
 * the deployment and, for ON_PREM by default, its licence in the same transaction. The licence
 * token is signed BEFORE the transaction opens, so a signing failure writes nothing.
 */
import { create } from "@bufbuild/protobuf";
import { deriveState, INITIAL_FACTS, type DeploymentFacts } from "@lcp/domain";
import {
  ProvisionDeploymentResponseSchema,
  type ProvisionDeploymentRequest,
  type ProvisionDeploymentResponse,
} from "@lcp/proto/licensing/v1/licensing_service_pb";
import { v7 as uuidv7 } from "uuid";
import { recordEvent, type CallContext } from "../core/audit.js";
import { signLicense } from "../core/signer.js";
import type { LicensingDeps } from "../deps.js";
import { deploymentToProto, licenseToProto, type LicenseView } from "../mapping.js";
import { DeploymentEntity, LicenseEntity, type DeploymentRow, type LicenseRow } from "../storage/entities.js";
import { factColumns, loadSettings } from "../storage/repository.js";
import { validateProvision } from "./validate.js";
import { newLicenseRow } from "./license-row.js";

/**
 * Creates a deployment (and by default for ON_PREM its licence), ONLINE or AIR_GAPPED as asked;
 * audited deployment.provision (+ license.issue).
 */
export async function provisionDeployment(
  deps: LicensingDeps,
  call: CallContext,
  req: ProvisionDeploymentRequest,
  view: LicenseView,
): Promise<ProvisionDeploymentResponse> {
  const now = deps.now();
  const input = validateProvision(req, now);
  const deploymentId = uuidv7({ msecs: now.getTime() });
  const licenseId = input.autoIssue ? uuidv7({ msecs: now.getTime() }) : null;

  // Remote work first: if signing-keys is down, nothing is half-created.
  const signed = licenseId
    ? await signLicense(deps.signer, {
        licenseId,
        deploymentId,
        entitlements: input.entitlements,
        notBefore: now,
        expiresAt: input.expiresAt,
      })
    : null;

  const facts: DeploymentFacts = {
    ...INITIAL_FACTS,
    licenseExpiresAt: licenseId ? input.expiresAt.getTime() : null,
    airGapped: input.connectivity === "AIR_GAPPED",
  };
  const settings = await loadSettings(deps.db.em(), now);
  const derived = deriveState(facts, now.getTime(), settings);
  const deployment = {
    id: deploymentId,
    name: input.name,
    customer: input.customer,
    kind: input.kind,
    subscriptionReason: null,
    subscriptionChangedAt: null,
    licenseId,
    ...factColumns(facts, null),
    agentVersion: null,
    state: derived.state,
    lockReason: derived.lockReason,
    stateChangedAt: now,
    version: 1,
    createdAt: now,
    updatedAt: now,
  } satisfies DeploymentRow;
  const license: LicenseRow | null =
    licenseId && signed
      ? newLicenseRow({ id: licenseId, deploymentId, customer: input.customer, entitlements: input.entitlements, signed, issuedAt: now, expiresAt: input.expiresAt })
      : null;

  await deps.db.transactional(async (em) => {
    await em.insert(DeploymentEntity, deployment);
    if (license) await em.insert(LicenseEntity, license);
    await deps.faults?.afterStateChange?.({ deploymentId, action: "deployment.provision" });
    recordEvent(
      em,
      call,
      {
        action: "deployment.provision",
        resource: { type: "deployment", id: deploymentId },
        details: { name: input.name, customer: input.customer, kind: input.kind, connectivity: input.connectivity, licenseId },
      },
      now,
    );
    if (license) {
      recordEvent(
        em,
        call,
        {
          action: "license.issue",
          resource: { type: "license", id: license.id },
          details: {
            deploymentId,
            entitlements: input.entitlements,
            expiresAt: input.expiresAt.toISOString(),
            kid: license.kid,
            autoIssued: true,
          },
        },
        now,
      );
    }
  });

  return create(ProvisionDeploymentResponseSchema, {
    deployment: deploymentToProto(deployment, derived),
    license: license ? licenseToProto(license, now, view) : undefined,
  });
}
