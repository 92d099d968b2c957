/**
 * Air-gapped boxes (docs/design.md §15): a box that can never reach the control plane activates
 * and renews by signed files an operator carries (`@lcp/tokens` offline-files.ts holds the format).
 *
 * The box writes a request and remembers it — the nonce, and for an activation the new private
 * key — in a pending-request file beside its state file, written as strictly as the state file
 * itself because the operator may take days to come back. It then accepts only the answer to that
 * request: signed by licensing's certificate under the CA the box ships with, for its nonce and
 * fingerprint, its licence and deployment, with a lease that verifies like an online one and is
 * newer than every lease it has held. Writing a new request replaces the pending one, so an older
 * answer (or the same answer twice) no longer imports.
 *
 * The checks here decide, the shell (appliance.ts) adopts: nothing is written or emitted here
 * except the pending-request file.
 */
import { readFileSync } from "node:fs";
import {
  newOfflineNonce,
  signActivationRequest,
  signRenewalRequest,
  verifyOfflineResponse,
  type ActivationResponseClaims,
  type OfflineAnswerState,
  type OfflineFileRefusalCode,
  type OfflineLockReason,
  type OfflineResponseClaims,
  type UsageSummary,
} from "@lcp/tokens";
import { DEFAULT_TRUST_DOMAIN, applianceSpiffeId, generateKeyAndCsr, serviceSpiffeId } from "@lcp/pki";
import { HEARTBEAT_INTERVAL_RANGE_MS, type ApplianceLease } from "@lcp/domain";
import type { ApplianceOptions, LeaseRejectedEvent } from "./api.js";
import { DEFAULT_AGENT_VERSION, activatedStateFile, deploymentIdFromLicenseToken } from "./activation.js";
import { followRenewedLicense, type Effect } from "./directives.js";
import { runtimeSettings } from "./evaluation.js";
import { checkLease, fingerprintHash, toApplianceLease } from "./lease.js";
import { certificateMatchesKey } from "./messages.js";
import { StateFileError, removeFileDurably, writeFileAtomic, type ApplianceStateFile } from "./state-file.js";
import type { LeaseRejectionCode } from "./lease.js";

/** The pending request is kept in `<stateFile>` + this suffix. */
export const PENDING_REQUEST_SUFFIX = ".pending-request";

/** The pending-request file's format version. */
const PENDING_REQUEST_VERSION = 1;

/** What a box asks for by file. */
export type OfflineRequestKind = "activation" | "renewal";

/** Why an offline operation was refused (the `code` of {@link OfflineFileError}). */
export type OfflineFileErrorCode =
  /** The file itself: malformed, wrong kind, bad signature, untrusted signer, expired, bad claims. */
  | OfflineFileRefusalCode
  /** The lease inside was refused, as an online lease would be (`LEASE_SEQ_NOT_NEWER`, `TOKEN_UNKNOWN_KEY` …). */
  | LeaseRejectionCode
  /** No request is waiting for an answer (none was written, or its answer was imported already). */
  | "NO_PENDING_REQUEST"
  /** The answer to another request: an older one of this box (replayed), or another box's. */
  | "RESPONSE_NOT_FOR_THIS_REQUEST"
  /** The answer names another box's fingerprint. */
  | "RESPONSE_FOR_ANOTHER_BOX"
  /** The answer names another deployment or licence than this box's. */
  | "RESPONSE_WRONG_DEPLOYMENT"
  | "RESPONSE_WRONG_LICENSE"
  /** An activation answer whose certificate is not for the key of the pending request. */
  | "CERTIFICATE_INVALID"
  /** A renewal request needs an activated box. */
  | "NOT_ACTIVATED"
  /** `activate()` or `sendHeartbeatOnce()` on a box without `baseUrl`: it activates and renews by files. */
  | "AIR_GAPPED";

/** An offline request could not be written or a response was refused; state and pending request are untouched. */
export class OfflineFileError extends Error {
  override name = "OfflineFileError";
  constructor(
    readonly code: OfflineFileErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The request the box waits on an answer for (the pending-request file). */
export interface PendingRequest {
  readonly version: typeof PENDING_REQUEST_VERSION;
  readonly kind: OfflineRequestKind;
  /** The licence the request was written under. */
  readonly licenseId: string;
  readonly deploymentId: string;
  /** The nonce the answer must echo. */
  readonly nonce: string;
  /** The box's clock when it wrote the request (epoch ms). */
  readonly createdAt: number;
  /** Activation: the new key (PKCS#8 PEM) whose CSR the request carries. Null for a renewal. */
  readonly privateKeyPem: string | null;
}

/** The path of the pending-request file of a state file. */
export function pendingRequestPath(stateFile: string): string {
  return `${stateFile}${PENDING_REQUEST_SUFFIX}`;
}

/**
 * Reads the pending request, or null when there is none.
 * @throws StateFileError when the file is unreadable or corrupt.
 */
export function readPendingRequest(path: string): PendingRequest | null {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new StateFileError(path, `cannot be read (${(error as NodeJS.ErrnoException).code ?? "error"})`, { cause: error });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new StateFileError(path, "is not valid JSON (corrupt); write a new request", { cause: error });
  }
  const r = raw as Record<string, unknown>;
  const str = (v: unknown) => typeof v === "string" && v.length > 0;
  const ok =
    typeof raw === "object" &&
    raw !== null &&
    r["version"] === PENDING_REQUEST_VERSION &&
    (r["kind"] === "activation" || r["kind"] === "renewal") &&
    str(r["licenseId"]) &&
    str(r["deploymentId"]) &&
    str(r["nonce"]) &&
    typeof r["createdAt"] === "number" &&
    Number.isFinite(r["createdAt"]) &&
    (r["kind"] === "activation" ? str(r["privateKeyPem"]) : r["privateKeyPem"] === null);
  if (!ok) throw new StateFileError(path, "is not a pending request of this SDK; write a new request");
  return raw as PendingRequest;
}

/** Replaces the pending request (mode 0600, atomically: it may hold a private key). */
export async function writePendingRequest(path: string, pending: PendingRequest): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(pending, null, 2)}\n`);
}

/** Forgets the pending request once its answer is adopted. */
export function removePendingRequest(path: string): Promise<void> {
  return removeFileDurably(path);
}

/** The box identity the requests and checks need. */
type Box = Pick<ApplianceOptions, "licenseId" | "licenseToken" | "fingerprint" | "issuer" | "caPem" | "trustDomain" | "agentVersion">;

/**
 * Writes an activation request: a new P-256 key and a CSR for the box's SPIFFE id, signed by that
 * key. Returns the file and the pending request to store (the key stays on the box).
 * @throws ActivationError when the licence token names no usable deployment.
 */
export async function activationRequest(box: Box, now: number): Promise<{ file: string; pending: PendingRequest }> {
  const deploymentId = deploymentIdFromLicenseToken(box.licenseToken);
  const spiffeId = applianceSpiffeId(box.trustDomain ?? DEFAULT_TRUST_DOMAIN, deploymentId);
  const { keyPem, csrPem } = await generateKeyAndCsr({ spiffeId, commonName: deploymentId });
  const nonce = newOfflineNonce();
  const file = await signedRequest(() =>
    signActivationRequest({
      privateKeyPem: keyPem,
      lic: box.licenseId,
      tok: box.licenseToken,
      fph: fingerprintHash(box.fingerprint),
      csr: csrPem,
      nce: nonce,
      boxTime: new Date(now),
      agv: box.agentVersion ?? DEFAULT_AGENT_VERSION,
    }),
  );
  const pending: PendingRequest = { version: PENDING_REQUEST_VERSION, kind: "activation", licenseId: box.licenseId, deploymentId, nonce, createdAt: now, privateKeyPem: keyPem };
  return { file, pending };
}

/** Writes a renewal request, signed by the key of the box's certificate, naming the highest lease seq it holds. */
export async function renewalRequest(box: Box, st: ApplianceStateFile, usage: UsageSummary, now: number): Promise<{ file: string; pending: PendingRequest }> {
  const nonce = newOfflineNonce();
  const file = await signedRequest(() =>
    signRenewalRequest({
      privateKeyPem: st.privateKeyPem,
      lic: st.licenseId,
      dep: st.deploymentId,
      fph: fingerprintHash(box.fingerprint),
      seq: st.highestLeaseSeq,
      crt: st.certificatePem,
      nce: nonce,
      use: usage,
      boxTime: new Date(now),
      agv: box.agentVersion ?? DEFAULT_AGENT_VERSION,
    }),
  );
  const pending: PendingRequest = {
    version: PENDING_REQUEST_VERSION,
    kind: "renewal",
    licenseId: st.licenseId,
    deploymentId: st.deploymentId,
    nonce,
    createdAt: now,
    privateKeyPem: null,
  };
  return { file, pending };
}

// The signers throw TypeError on a claim out of bounds (e.g. a usage counter's name): the host's input.
async function signedRequest(sign: () => Promise<string>): Promise<string> {
  try {
    return await sign();
  } catch (error) {
    if (error instanceof TypeError) throw new OfflineFileError("FILE_CLAIMS_INVALID", `the request cannot be written: ${error.message}`, { cause: error });
    throw error;
  }
}

/** An answer the box accepted: what to install, and what it said. */
export interface AcceptedResponse {
  readonly kind: OfflineRequestKind;
  readonly answer: OfflineAnswerState;
  /** Set when `answer` is LOCKED. */
  readonly lockReason?: OfflineLockReason;
  /** The state file to install and write, or null (a LOCKED answer to a box never activated). */
  readonly file: ApplianceStateFile | null;
  /** The lease to run on: a new one, or the held one ("held") when the answer carried none. */
  readonly lease: ApplianceLease | "held";
  /** What the shell does besides installing the state (reporting a renewed licence). */
  readonly effects?: readonly Effect[];
}

/** A refused answer: the error to throw, and the lease rejection to report when the lease was the cause. */
export interface RefusedResponse {
  readonly ok: false;
  readonly error: OfflineFileError;
  readonly leaseRejection?: LeaseRejectedEvent;
}

/** What {@link checkResponse} checks against. */
export interface ResponseContext {
  readonly box: Box;
  readonly pending: PendingRequest | null;
  /** The state file held now, or null before activation. */
  readonly current: ApplianceStateFile | null;
  /** The box's clock. */
  readonly now: number;
}

const refused = (code: OfflineFileErrorCode, message: string, leaseRejection?: LeaseRejectedEvent): RefusedResponse => ({
  ok: false,
  error: new OfflineFileError(code, message),
  ...(leaseRejection ? { leaseRejection } : {}),
});

/**
 * Checks a response file against the pending request and decides what accepting it means. Never
 * throws for a bad file: every refusal is a {@link RefusedResponse}.
 */
export async function checkResponse(text: string, ctx: ResponseContext): Promise<({ ok: true } & AcceptedResponse) | RefusedResponse> {
  const { box, pending, current, now } = ctx;
  if (!pending) return refused("NO_PENDING_REQUEST", "no request is waiting for an answer: write a request first (an answer imports once)");
  if (pending.kind === "renewal" && !current) return refused("NOT_ACTIVATED", "a renewal answer needs an activated box");
  const trust = {
    caPem: box.caPem,
    signerUri: serviceSpiffeId(box.trustDomain ?? DEFAULT_TRUST_DOMAIN, "licensing"),
    issuer: box.issuer,
    now: new Date(now),
    clockToleranceMs: runtimeSettings(current).maxClockSkewMs,
  };
  const verdict =
    pending.kind === "activation" ? await verifyOfflineResponse(text, "activationResponse", trust) : await verifyOfflineResponse(text, "renewalResponse", trust);
  if (!verdict.ok) return refused(verdict.code, verdict.message);
  const claims: OfflineResponseClaims = verdict.claims;

  // The fingerprint first: another box's answer also fails the nonce, but this says why.
  if (claims.fph !== fingerprintHash(box.fingerprint)) return refused("RESPONSE_FOR_ANOTHER_BOX", "this answer is for another box (its fingerprint is not this box's)");
  if (claims.nce !== pending.nonce) {
    return refused("RESPONSE_NOT_FOR_THIS_REQUEST", "this answer is not for the request this box is waiting on (an older request's, or already imported): bring the answer to the latest request");
  }
  if (claims.dep !== pending.deploymentId) return refused("RESPONSE_WRONG_DEPLOYMENT", `this answer is for deployment ${claims.dep}, not ${pending.deploymentId}`);
  // A renewal may name the deployment's newer licence, as an online lease may: its lease (checked
  // below) then names it too. A LOCKED answer carries no lease, so it must name one the box knows.
  const knownLicense =
    pending.kind === "activation"
      ? claims.sub === pending.licenseId
      : claims.lse !== undefined || [current!.licenseId, ...(current!.previousLicenseIds ?? [])].includes(claims.sub);
  if (!knownLicense) return refused("RESPONSE_WRONG_LICENSE", `this answer is for licence ${claims.sub}, not ${pending.licenseId}`);

  if (pending.kind === "activation") return acceptActivation(claims as ActivationResponseClaims, ctx, pending);
  return acceptRenewal(claims, ctx, current!);
}

async function acceptActivation(claims: ActivationResponseClaims, ctx: ResponseContext, pending: PendingRequest): Promise<({ ok: true } & AcceptedResponse) | RefusedResponse> {
  const { box, current, now } = ctx;
  const keyPem = pending.privateKeyPem!;
  if (!certificateMatchesKey(claims.crt, keyPem)) return refused("CERTIFICATE_INVALID", "the answer's certificate is not for the key of this box's request");
  // A reinstall keeps the old state file's seq floor and watermark, as an online activation does.
  const previous = current?.deploymentId === pending.deploymentId ? current : null;
  const trusted = Math.max(current?.watermark ?? 0, claims.iat * 1000);
  if (claims.st === "LOCKED") {
    if (!previous) return { ok: true, kind: "activation", answer: "LOCKED", lockReason: claims.rsn!, file: null, lease: "held" };
    return { ok: true, kind: "activation", answer: "LOCKED", lockReason: claims.rsn!, file: locked(previous, claims.rsn!, trusted), lease: "held" };
  }
  const settings = {
    heartbeatIntervalMs: Math.max(HEARTBEAT_INTERVAL_RANGE_MS.min, claims.set.heartbeatIntervalMs),
    graceWindowMs: claims.set.graceWindowMs,
    maxClockSkewMs: claims.set.maxClockSkewMs,
  };
  const leaseVerdict = await checkLease(claims.lse!, {
    jwks: claims.jwks,
    issuer: box.issuer,
    licenseId: pending.licenseId,
    deploymentId: pending.deploymentId,
    fingerprint: box.fingerprint,
    highestSeq: previous?.highestLeaseSeq ?? 0,
    now,
    maxClockSkewMs: settings.maxClockSkewMs,
  });
  if (!leaseVerdict.ok) return leaseRefused(leaseVerdict);
  const lease = toApplianceLease(leaseVerdict.claims);
  const file = activatedStateFile({
    licenseId: pending.licenseId,
    deploymentId: pending.deploymentId,
    certificatePem: claims.crt,
    privateKeyPem: keyPem,
    certificateChainPem: [...claims.chn],
    leaseToken: claims.lse!,
    lease,
    jwks: claims.jwks,
    settings,
    watermark: trusted,
  });
  if (claims.ren !== undefined) file.renewAt = claims.ren * 1000;
  return { ok: true, kind: "activation", answer: claims.st, file, lease };
}

async function acceptRenewal(claims: OfflineResponseClaims, ctx: ResponseContext, current: ApplianceStateFile): Promise<({ ok: true } & AcceptedResponse) | RefusedResponse> {
  const { box, now } = ctx;
  const trusted = Math.max(current.watermark, claims.iat * 1000);
  if (claims.st === "LOCKED") return { ok: true, kind: "renewal", answer: "LOCKED", lockReason: claims.rsn!, file: locked(current, claims.rsn!, trusted), lease: "held" };
  // No licence pinned: the lease may name the deployment's renewed licence; the seq guards replay.
  const leaseVerdict = await checkLease(claims.lse!, {
    jwks: claims.jwks,
    issuer: box.issuer,
    deploymentId: current.deploymentId,
    fingerprint: box.fingerprint,
    highestSeq: current.highestLeaseSeq,
    now,
    maxClockSkewMs: current.settings.maxClockSkewMs,
  });
  if (!leaseVerdict.ok) return leaseRefused(leaseVerdict);
  if (leaseVerdict.claims.sub !== claims.sub) return refused("RESPONSE_WRONG_LICENSE", `the answer names licence ${claims.sub} but its lease ${leaseVerdict.claims.sub}`);
  const lease = toApplianceLease(leaseVerdict.claims);
  const file = structuredClone(current);
  const effects: Effect[] = [];
  if (leaseVerdict.claims.sub !== file.licenseId) followRenewedLicense(file, leaseVerdict.claims.sub, effects);
  file.leaseToken = claims.lse!;
  file.highestLeaseSeq = lease.seq;
  file.jwks = claims.jwks;
  delete file.leaseReplacement;
  // A signed answer to this box's own request is the control plane's current word: it lifts local
  // locks and suspensions as a new activation would (a revocation stays: only activation clears it).
  file.lockedByDirective = false;
  file.suspendedByDirective = false;
  file.watermark = Math.max(trusted, lease.iat);
  if (claims.ren === undefined) delete file.renewAt;
  else file.renewAt = claims.ren * 1000;
  return { ok: true, kind: "renewal", answer: claims.st, file, lease, effects };
}

/** The held state with a LOCKED answer applied: REVOKED is a revocation, REBOUND and EXPIRED a lock. */
function locked(current: ApplianceStateFile, reason: OfflineLockReason, watermark: number): ApplianceStateFile {
  const file = structuredClone(current);
  if (reason === "REVOKED") file.revoked = true;
  else file.lockedByDirective = true;
  delete file.renewAt;
  file.watermark = watermark;
  return file;
}

function leaseRefused(verdict: { code: LeaseRejectionCode; message: string; seq?: number }): RefusedResponse {
  const event: LeaseRejectedEvent = { code: verdict.code, message: verdict.message, ...(verdict.seq === undefined ? {} : { seq: verdict.seq }) };
  return refused(verdict.code, `the answer's lease cannot be accepted: ${verdict.message}`, event);
}
