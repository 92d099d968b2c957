/**
 * Answers for air-gapped boxes (docs/design.md §15): an operator uploads the request file a box
 * wrote, and gets back the response file to carry to it. The files are libs/tokens
 * offline-files.ts; this module holds the rules.
 *
 * Activation (RespondToActivation) is Activate by another road: the same licence-token checks and
 * domain verdict (a second fingerprint refused, a revoked licence refused for ever), through the
 * same change path, plus two rules of its own — the request is signed by the key its CSR asks a
 * certificate for (proof of possession), and the deployment is AIR_GAPPED. Audited
 * `license.activate` with `channel: "file"`, the operator as the actor.
 *
 * Renewal (RespondToRenewal) is a heartbeat by another road: the request is signed by the key of a
 * certificate our appliance CA issued to that very deployment, and the domain's heartbeat verdict
 * decides. Accepted, the box was seen now and gets the next lease (its seq above both ours and the
 * one the box says it holds). Refused because the box may not run — revoked, expired, rebound to
 * other hardware — it gets a signed answer that locks it, and nothing changes here. Audited
 * `license.renew` with `channel: "file"`, and the usage counters the box reported.
 *
 * Either way, a refusal for anything else (a broken signature, a key that is not its CSR's, an
 * ONLINE deployment, a certificate we did not issue or have replaced) is a clear error and an
 * audit event with outcome DENIED, and nothing is written.
 */
import { X509Certificate } from "node:crypto";
import { decodeJwt } from "jose";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  heartbeat,
  heartbeatRefusalLocksBox,
  leaseExpiry,
  leaseLifetimeMs,
  leaseRenewAfterMsFor,
  leaseStateFor,
  type DeploymentFacts,
  type DerivedState,
  type DomainCode,
  type Settings,
} from "@lcp/domain";
import { applianceSpiffeId, csrPublicKey, normalizeSerialNumber, splitPemCertificates } from "@lcp/pki";
import {
  OfflineAnswerSchema,
  RespondToActivationResponseSchema,
  RespondToRenewalResponseSchema,
  type OfflineAnswer,
  type RespondToActivationRequest,
  type RespondToActivationResponse,
  type RespondToRenewalRequest,
  type RespondToRenewalResponse,
} from "@lcp/proto/licensing/v1/licensing_service_pb";
import { DomainError, lockReasonToProto, stateToProto } from "@lcp/rpc";
import {
  MAX_OFFLINE_FILE_BYTES,
  signOfflineResponse,
  verifyActivationRequest,
  verifyRenewalRequest,
  type OfflineFileRefusal,
  type OfflineLockReason,
  type ResponseToSign,
  type RenewalResponseClaims,
} from "@lcp/tokens";
import { activateBound } from "../appliance-service/activate.js";
import { checkCsrEnvelope, MAX_TOKEN_BYTES } from "../appliance-service/validate.js";
import type { CallContext } from "../core/audit.js";
import { applyDeploymentChange, loadForDecision } from "../core/deployment-change.js";
import { auditRefusals, type LicensingDeps } from "../deps.js";
import { CertificateEntity } from "../storage/entities.js";
import { factsOf, loadLicense } from "../storage/repository.js";
import { requireId } from "../validation.js";

const FIELD = "request_file";

/** The answer a file gives, for the operator (proto OfflineAnswer). */
function answerOf(input: {
  licenseId: string;
  deploymentId: string;
  state: DerivedState["state"];
  lockReason: DerivedState["lockReason"];
  lease?: { seq: number; expiresAt: Date; renewAt: Date };
  responseExpiresAt: Date;
}): OfflineAnswer {
  return create(OfflineAnswerSchema, {
    licenseId: input.licenseId,
    deploymentId: input.deploymentId,
    state: stateToProto(input.state),
    lockReason: lockReasonToProto(input.lockReason),
    leaseSeq: BigInt(input.lease?.seq ?? 0),
    ...(input.lease
      ? { leaseExpireTime: timestampFromDate(input.lease.expiresAt), renewTime: timestampFromDate(input.lease.renewAt) }
      : {}),
    responseExpireTime: timestampFromDate(input.responseExpiresAt),
  });
}

/** When the lease signed `now` for a deployment with these facts expires, and when its box asks for the next. */
function leaseTimes(now: Date, settings: Settings, facts: DeploymentFacts): { expiresAt: Date; renewAt: Date } {
  return {
    expiresAt: new Date(leaseExpiry(now.getTime(), settings, facts)),
    renewAt: new Date(now.getTime() + leaseRenewAfterMsFor(facts, settings)),
  };
}

/** A refused file as the caller's error, naming the field. */
function fileRefused(refusal: OfflineFileRefusal): DomainError {
  return new DomainError(refusal.code, `request_file refused: ${refusal.message}`, { field: FIELD });
}

/** Bounds the upload before anything parses it. */
function requireFile(file: string): string {
  if (file.trim() === "") throw new DomainError("INVALID_ARGUMENT", "request_file is required", { field: FIELD });
  if (Buffer.byteLength(file, "utf8") > MAX_OFFLINE_FILE_BYTES) {
    throw new DomainError("FILE_MALFORMED", `request_file must be at most ${MAX_OFFLINE_FILE_BYTES} bytes`, { field: FIELD });
  }
  return file;
}

/** `lic` of a file, read unverified and bounded, to name the licence in a refusal's audit event. */
function claimedLicence(file: string): string {
  try {
    const lic = decodeJwt(file)["lic"];
    return typeof lic === "string" && /^[0-9a-fA-F-]{36}$/.test(lic) ? lic.toLowerCase() : "-";
  } catch {
    return "-";
  }
}

/** The import deadline a response carries (read back from the signed file, so it is the file's own). */
function expiryOf(file: string): Date {
  return new Date(decodeJwt(file).exp! * 1000);
}

/** RespondToActivation; see the module comment. */
export function respondToActivation(deps: LicensingDeps, call: CallContext, req: RespondToActivationRequest): Promise<RespondToActivationResponse> {
  return auditRefusals(deps, call, () => ({ action: "license.activate", resource: { type: "license", id: claimedLicence(req.requestFile.slice(0, MAX_OFFLINE_FILE_BYTES)) }, details: { channel: "file" } }), async () => {
    const verified = await verifyActivationRequest(requireFile(req.requestFile));
    if (!verified.ok) throw fileRefused(verified);
    const { claims } = verified;
    const licenseId = requireId(claims.lic, "request_file.lic");
    if (claims.tok.length > MAX_TOKEN_BYTES) throw new DomainError("TOKEN_MALFORMED", "the licence token in the request is too long", { field: FIELD });
    checkCsrEnvelope(claims.csr, "request_file.csr");
    // Proof of possession: the request is signed by the key the certificate will be for.
    const csrKey = csrPublicKey(claims.csr);
    if (!csrKey) throw new DomainError("CSR_MALFORMED", "the request's CSR is not a PKCS#10 certificate request", { field: FIELD });
    const spki = (k: typeof csrKey) => k.export({ type: "spki", format: "der" });
    if (!spki(csrKey).equals(spki(verified.publicKey))) {
      throw new DomainError("REQUEST_KEY_MISMATCH", "the request is signed by another key than the one its CSR asks a certificate for", { field: FIELD });
    }

    const activation = await activateBound(
      deps,
      call,
      { licenseId, licenseToken: claims.tok, fingerprintHash: claims.fph, csrPem: claims.csr, agentVersion: claims.agv ?? null },
      "file",
    );
    const { settings, now } = activation;
    const leaseState = leaseStateFor(activation.derived);
    if (!leaseState) throw new Error(`activation of ${licenseId} derived ${activation.derived.state}, which carries no lease`);
    const times = leaseTimes(now, settings, activation.facts);
    const file = await signOfflineResponse(
      "activationResponse",
      {
        iss: deps.tokenIssuer,
        sub: activation.licenseId,
        dep: activation.deploymentId,
        fph: claims.fph,
        nce: claims.nce,
        st: leaseState,
        lse: activation.lease.token,
        jwks: JSON.parse(activation.jwksJson) as ResponseToSign<RenewalResponseClaims>["jwks"],
        ren: Math.floor(times.renewAt.getTime() / 1000),
        crt: activation.certificate.certificatePem,
        chn: activation.certificate.chainPem,
        // An air-gapped box runs on its lease for as long as it is valid.
        set: { heartbeatIntervalMs: settings.heartbeatIntervalMs, graceWindowMs: leaseLifetimeMs(activation.facts, settings), maxClockSkewMs: settings.maxClockSkewMs },
      },
      deps.offlineSigner(),
      now,
    );
    return create(RespondToActivationResponseSchema, {
      responseFile: file,
      answer: answerOf({
        licenseId: activation.licenseId,
        deploymentId: activation.deploymentId,
        state: activation.derived.state,
        lockReason: activation.derived.lockReason,
        lease: { seq: activation.lease.seq, ...times },
        responseExpiresAt: expiryOf(file),
      }),
    });
  });
}

/** Why a locking heartbeat refusal locks the box, as a response file says it. */
function lockReasonOf(code: DomainCode): OfflineLockReason {
  if (code === "LICENSE_REVOKED") return "REVOKED";
  if (code === "LICENSE_EXPIRED") return "EXPIRED";
  return "REBOUND";
}

/** The certificate of a renewal request: issued by our appliance CA, for this deployment, and recorded. */
async function checkRenewalCertificate(deps: LicensingDeps, certificate: X509Certificate, deploymentId: string): Promise<{ revoked: boolean }> {
  const cas = (await deps.signing.applianceTrustBundle()).flatMap((bundle) => splitPemCertificates(bundle)).map((pem) => new X509Certificate(pem));
  const issued = cas.some((ca) => certificate.checkIssued(ca) && certificate.verify(ca.publicKey));
  const uri = applianceSpiffeId(deps.trustDomain, deploymentId);
  const names = (certificate.subjectAltName ?? "").split(/,\s*/);
  const row = issued && names.includes(`URI:${uri}`)
    ? await deps.db.em().findOne(CertificateEntity, { serialNumber: normalizeSerialNumber(certificate.serialNumber), deploymentId }, { disableIdentityMap: true })
    : null;
  if (!row) throw new DomainError("CERTIFICATE_NOT_RECOGNISED", "the request is signed by a certificate this control plane did not issue to the deployment", { field: FIELD });
  return { revoked: row.revokedAt !== null };
}

/** RespondToRenewal; see the module comment. */
export function respondToRenewal(deps: LicensingDeps, call: CallContext, req: RespondToRenewalRequest): Promise<RespondToRenewalResponse> {
  return auditRefusals(deps, call, () => ({ action: "license.renew", resource: { type: "license", id: claimedLicence(req.requestFile.slice(0, MAX_OFFLINE_FILE_BYTES)) }, details: { channel: "file" } }), async () => {
    const verified = await verifyRenewalRequest(requireFile(req.requestFile));
    if (!verified.ok) throw fileRefused(verified);
    const { claims } = verified;
    const licenseId = requireId(claims.lic, "request_file.lic");
    const deploymentId = requireId(claims.dep, "request_file.dep");
    const license = await loadLicense(deps.db.em(), licenseId);
    if (!license) throw new DomainError("NOT_FOUND", `licence ${licenseId} does not exist`, { licenseId });
    if (license.deploymentId !== deploymentId) throw new DomainError("PERMISSION_DENIED", "the request names another deployment than its licence", { field: FIELD });
    const certificate = await checkRenewalCertificate(deps, verified.certificate, deploymentId);

    const loaded = await loadForDecision(deps, deploymentId);
    if (!loaded.facts.airGapped) {
      throw new DomainError("NOT_AIR_GAPPED", "the deployment is ONLINE: its box renews by heartbeat; switch it to AIR_GAPPED to answer files");
    }
    const audit = {
      resource: { type: "license" as const, id: licenseId },
      details: { channel: "file", deploymentId, fingerprintHash: claims.fph, boxLeaseSeq: claims.seq, usage: claims.use, agentVersion: claims.agv ?? null },
    };
    const verdict = heartbeat(loaded.facts, claims.fph, loaded.now.getTime());
    if (!verdict.ok && heartbeatRefusalLocksBox(verdict.code)) {
      // The box may not run: tell it so, signed, and change nothing here.
      const reason = lockReasonOf(verdict.code);
      const file = await signOfflineResponse(
        "renewalResponse",
        { iss: deps.tokenIssuer, sub: licenseId, dep: deploymentId, fph: claims.fph, nce: claims.nce, st: "LOCKED", rsn: reason, jwks: JSON.parse((await deps.signing.jwks()).json) },
        deps.offlineSigner(),
        loaded.now,
      );
      await deps.refusals.record({ call, spec: { action: "license.renew", ...audit, details: { ...audit.details, answer: "LOCKED", lockReason: reason } }, refusal: { code: verdict.code, message: verdict.message } });
      return create(RespondToRenewalResponseSchema, {
        responseFile: file,
        answer: answerOf({ licenseId, deploymentId, state: "LOCKED", lockReason: reason === "REBOUND" ? null : reason, responseExpiresAt: expiryOf(file) }),
      });
    }
    if (certificate.revoked) {
      throw new DomainError("CERTIFICATE_NOT_RECOGNISED", "the request is signed by the key of an earlier installation, whose certificate a newer activation replaced", { field: FIELD });
    }

    const result = await applyDeploymentChange(deps, {
      deploymentId,
      call,
      action: "license.renew",
      initial: loaded,
      decide(current) {
        if (!current.facts.airGapped) throw new DomainError("NOT_AIR_GAPPED", "the deployment was switched to ONLINE meanwhile");
        const beat = heartbeat(current.facts, claims.fph, current.now.getTime());
        if (!beat.ok) return beat;
        return {
          facts: beat.facts,
          issueLease: true,
          leaseSeqFloor: claims.seq,
          deployment: claims.agv ? { agentVersion: claims.agv } : {},
          audit: [{ action: "license.renew", ...audit }],
        };
      },
    });
    if (!result.lease || !result.license) throw new Error(`renewal of ${licenseId} produced no lease (state ${result.derived.state})`);
    const { settings } = result;
    const now = loaded.now;
    const times = leaseTimes(now, settings, factsOf(result.deployment));
    const leaseState = leaseStateFor(result.derived);
    if (!leaseState) throw new Error(`renewal of ${licenseId} derived ${result.derived.state}, which carries no lease`);
    const file = await signOfflineResponse(
      "renewalResponse",
      {
        iss: deps.tokenIssuer,
        // The current licence: a term renewal superseded the box's, and its leases name the new one.
        sub: result.license.id,
        dep: deploymentId,
        fph: claims.fph,
        nce: claims.nce,
        st: leaseState,
        lse: result.lease.token,
        jwks: JSON.parse((await deps.signing.jwks()).json),
        ren: Math.floor(times.renewAt.getTime() / 1000),
      },
      deps.offlineSigner(),
      now,
    );
    return create(RespondToRenewalResponseSchema, {
      responseFile: file,
      answer: answerOf({
        licenseId: result.license.id,
        deploymentId,
        state: result.derived.state,
        lockReason: result.derived.lockReason,
        lease: { seq: result.lease.seq, ...times },
        responseExpiresAt: expiryOf(file),
      }),
    });
  });
}
