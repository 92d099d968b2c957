/**
 * Activate — "The appliance activates its licence on first run … binds the licence to the box's
 * fingerprint and drives the deployment to active" (docs/design.md §4 enrolment). No client
 * certificate: the licence token authorises the call. In order:
 *
 * 1. fields (validate.ts); the fingerprint is hashed at once and never stored raw;
 * 2. the licence token: EdDSA by a key in signing-keys' JWKS (refetched once when it names an
 *    unknown kid), our issuer, `typ` license+jwt (a lease never passes), within its term, and for
 *    exactly the licence named in the request;
 * 3. the domain's activate verdict on the deployment's facts (revoked → LICENSE_REVOKED, other box
 *    → FINGERPRINT_MISMATCH, the same box again → a reinstall);
 * 4. the certificate from signing-keys (which refuses a CSR naming anything but this
 *    deployment's SPIFFE id) and a lease, both before the transaction;
 * 5. one transaction: compare-and-set on the deployment's version binds the fingerprint, revokes
 *    the certificates issued before (a re-activation retires the old installation's), records
 *    the new serial (only recorded serials pass the mTLS check) and license.activate. While the
 *    licence is unbound, a box a rebind moved it off is refused (checked again in here).
 *
 * Twenty boxes racing for one licence: all pass 1–4, exactly one wins the compare-and-set; the
 * others re-decide on the winner's facts and are refused FINGERPRINT_MISMATCH.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { activate, type DeploymentFacts, type DerivedState, type Settings } from "@lcp/domain";
import {
  ActivateResponseSchema,
  type ActivateRequest,
  type ActivateResponse,
} from "@lcp/proto/licensing/v1/appliance_service_pb";
import { DomainError, stateToProto, type ErrorCode } from "@lcp/rpc";
import { verifyLicenseToken, type LicenseTokenClaims, type TokenRefusalCode } from "@lcp/tokens";
import type { CallContext } from "../core/audit.js";
import { applyDeploymentChange } from "../core/deployment-change.js";
import type { LicensingDeps } from "../deps.js";
import { applianceSettingsToProto } from "../mapping.js";
import { CertificateEntity } from "../storage/entities.js";
import { factsOf, loadLicense, loadSettings, revokeCertificates, wasMovedOffByRebind } from "../storage/repository.js";
import type { IssuedApplianceCertificate } from "../signing-keys.js";
import { validateActivate, type ActivateInput } from "./validate.js";

/**
 * Token refusals keep their @lcp/tokens code (libs/rpc/src/errors.ts maps them to InvalidArgument),
 * except the two about the licence term: an expired token had a good signature (jose checks it
 * before the claims), so it truly is an ended (or not yet started) licence — FailedPrecondition.
 */
function tokenCode(code: TokenRefusalCode): ErrorCode {
  if (code === "TOKEN_EXPIRED") return "LICENSE_EXPIRED";
  if (code === "TOKEN_NOT_YET_VALID") return "LICENSE_NOT_YET_VALID";
  return code;
}

const TOKEN_MESSAGES: Partial<Record<TokenRefusalCode, string>> = {
  TOKEN_WRONG_TYPE: "license_token is not a licence token (typ must be license+jwt)",
  TOKEN_UNKNOWN_KEY:
    "license_token is not signed by a current key of this control plane (a licence signed by a since revoked key must be re-issued)",
  TOKEN_BAD_SIGNATURE: "license_token signature is invalid",
  TOKEN_EXPIRED: "the licence term has ended",
  TOKEN_NOT_YET_VALID: "the licence term has not started yet",
};

/** Verifies a licence token against signing-keys' JWKS; a token naming an unknown kid triggers one refetch. */
export async function verifyLicense(deps: LicensingDeps, token: string, now: Date, clockSkewMs: number): Promise<{ claims: LicenseTokenClaims; jwksJson: string }> {
  const options = { issuer: deps.tokenIssuer, now, clockToleranceSec: Math.floor(clockSkewMs / 1000) };
  let jwks = await deps.signing.jwks();
  let verdict = await verifyLicenseToken(token, { ...options, jwks: jwks.verifier });
  // A key created after our last fetch (rotation) is unknown until we refetch.
  if (!verdict.ok && verdict.code === "TOKEN_UNKNOWN_KEY") {
    jwks = await deps.signing.refreshJwks();
    verdict = await verifyLicenseToken(token, { ...options, jwks: jwks.verifier });
  }
  if (!verdict.ok) {
    throw new DomainError(tokenCode(verdict.code), TOKEN_MESSAGES[verdict.code] ?? `license_token refused: ${verdict.message}`, {
      field: "license_token",
    });
  }
  return { claims: verdict.claims, jwksJson: jwks.json };
}

/**
 * How the box asked: over the network (Activate, the box is the actor once its token verifies),
 * or by a request file an operator carried from an air-gapped site (RespondToActivation, the
 * operator stays the actor and the deployment must be AIR_GAPPED).
 */
export type ActivationChannel = "network" | "file";

/** What an accepted activation hands back to its channel. */
export interface Activation {
  readonly deploymentId: string;
  readonly licenseId: string;
  readonly certificate: IssuedApplianceCertificate;
  readonly lease: { readonly token: string; readonly seq: number };
  readonly jwksJson: string;
  readonly settings: Settings;
  readonly derived: DerivedState;
  /** The deployment's facts as the activation left them (its lease's length follows from them). */
  readonly facts: DeploymentFacts;
  readonly now: Date;
}

/** Activates a licence for a box over the network; see the module comment. `call.actor` becomes the box once its token is verified. */
export async function activateLicense(deps: LicensingDeps, call: CallContext, req: ActivateRequest): Promise<ActivateResponse> {
  const activation = await activateBound(deps, call, validateActivate(req), "network");
  return create(ActivateResponseSchema, {
    deploymentId: activation.deploymentId,
    certificatePem: activation.certificate.certificatePem,
    certificateChainPem: activation.certificate.chainPem,
    leaseToken: activation.lease.token,
    jwksJson: activation.jwksJson,
    settings: applianceSettingsToProto(activation.settings),
    state: stateToProto(activation.derived.state),
    serverTime: timestampFromDate(activation.now),
  });
}

/** Steps 2–5 of the module comment, whichever channel the validated request came by. */
export async function activateBound(deps: LicensingDeps, call: CallContext, input: ActivateInput, channel: ActivationChannel): Promise<Activation> {
  const now = deps.now();
  const settings = await loadSettings(deps.db.em(), now);
  const { claims, jwksJson } = await verifyLicense(deps, input.licenseToken, now, settings.maxClockSkewMs);
  // A valid token for licence A must not activate licence B.
  if (claims.sub !== input.licenseId) {
    throw new DomainError("PERMISSION_DENIED", "license_token was issued for another licence", { field: "license_token" });
  }
  if (channel === "network") call.actor = { kind: "appliance", id: claims.dep };

  const license = await loadLicense(deps.db.em(), input.licenseId);
  if (!license) throw new DomainError("NOT_FOUND", `licence ${input.licenseId} does not exist`, { licenseId: input.licenseId });
  if (license.deploymentId !== claims.dep) {
    throw new DomainError("PERMISSION_DENIED", "license_token names another deployment than its licence", { field: "license_token" });
  }

  // Read ahead so a box moved off by a rebind costs no certificate; re-checked in the transaction.
  const movedOffByRebind = await wasMovedOffByRebind(deps.db.em(), license.deploymentId, input.fingerprintHash);
  const result = await applyDeploymentChange<IssuedApplianceCertificate>(deps, {
    deploymentId: license.deploymentId,
    call,
    action: "license.activate",
    decide(loaded) {
      // Revocation outranks supersession: a revoked licence says so, whichever licence it is.
      if (license.revokedAt) return { ok: false, code: "LICENSE_REVOKED", message: "the licence has been revoked" };
      if (loaded.deployment.licenseId !== license.id) {
        throw new DomainError(
          "LICENSE_SUPERSEDED",
          "this licence was superseded by a newer licence for the deployment; activate with the new licence token",
        );
      }
      if (channel === "file" && !loaded.facts.airGapped) {
        throw new DomainError("NOT_AIR_GAPPED", "the deployment is ONLINE: its box activates over the network; switch it to AIR_GAPPED to answer files");
      }
      const verdict = activate(loaded.facts, input.fingerprintHash, loaded.now.getTime(), { movedOffByRebind });
      if (!verdict.ok) return verdict;
      return {
        facts: verdict.facts,
        deployment: { agentVersion: input.agentVersion ?? loaded.deployment.agentVersion },
        issueLease: true,
        audit: [
          {
            action: "license.activate",
            resource: { type: "license", id: license.id },
            details: {
              deploymentId: license.deploymentId,
              fingerprintHash: input.fingerprintHash,
              reinstall: verdict.reinstall,
              agentVersion: input.agentVersion,
              channel,
            },
          },
        ],
        write: async (em, at, certificate) => {
          // Under the compare-and-set, so no rebind can slip in between this check and the binding.
          if (loaded.facts.boundFingerprintHash === null && (await wasMovedOffByRebind(em, license.deploymentId, input.fingerprintHash))) {
            const refused = activate(loaded.facts, input.fingerprintHash, loaded.now.getTime(), { movedOffByRebind: true });
            if (!refused.ok) throw new DomainError(refused.code, refused.message);
          }
          // One installation per box: a re-activation (a reinstall, new keys) retires the
          // certificates issued before, so a copy of the old key cannot keep authenticating.
          await revokeCertificates(em, license.deploymentId, at, "superseded by a new activation");
          await em.insert(CertificateEntity, {
            serialNumber: certificate.serialNumber,
            deploymentId: license.deploymentId,
            licenseId: license.id,
            fingerprintHash: input.fingerprintHash,
            issuedAt: at,
            notAfter: certificate.notAfter,
            revokedAt: null,
            revokeReason: null,
          });
        },
      };
    },
    prepare: (loaded) => deps.signing.issueApplianceCertificate(loaded.deployment.id, input.csrPem),
  });

  if (!result.lease) {
    // activate() always leaves a bound, unlocked deployment, so a lease is always due; if not, it is a bug.
    throw new Error(`activation of ${license.id} produced no lease (state ${result.derived.state})`);
  }
  return {
    deploymentId: license.deploymentId,
    licenseId: license.id,
    certificate: result.prepared,
    lease: result.lease,
    jwksJson,
    settings: result.settings,
    derived: result.derived,
    facts: factsOf(result.deployment),
    now,
  };
}
