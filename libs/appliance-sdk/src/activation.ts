/**
 * Activation: the box generates a P-256 key and CSR for its SPIFFE id, calls Activate over
 * server-authenticated TLS, and believes the answer only once the deployment, JWKS, certificate
 * and lease all check out. What it returns becomes the state file.
 */
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { decodeJwt, type JSONWebKeySet } from "jose";
import type { ApplianceLease } from "@lcp/domain";
import { DEFAULT_TRUST_DOMAIN, applianceSpiffeId, generateKeyAndCsr, isValidSpiffeName } from "@lcp/pki";
import { ApplianceService, type ActivateResponse } from "@lcp/proto/licensing/v1/appliance_service_pb";
import { ActivationError, type ApplianceOptions, type LeaseRejectedEvent } from "./api.js";
import { parseJwks } from "./key-set.js";
import { checkLease, toApplianceLease } from "./lease.js";
import { certificateMatchesKey, errorReason, settingsFrom } from "./messages.js";
import { STATE_FILE_VERSION, type ApplianceRuntimeSettings, type ApplianceStateFile } from "./state-file.js";
import type { CallTransport } from "./transport.js";

/** Reported in hello, SendHeartbeat and Activate when the host sets no `agentVersion`. */
export const DEFAULT_AGENT_VERSION = "lcp-appliance-sdk/0.0.0";

/** What {@link activateBox} runs with. */
export interface ActivationContext {
  readonly options: ApplianceOptions;
  readonly clock: () => number;
  readonly callTimeoutMs: number;
  /** A server-authenticated transport (the box has no certificate yet). */
  readonly transport: () => CallTransport;
  /** The state file held now, if any: a reinstall keeps its seq floor and watermark. */
  readonly current: () => ApplianceStateFile | null;
  /** The control plane answered LICENSE_REVOKED. */
  readonly onRevoked: () => Promise<void>;
  readonly onLeaseRejected: (event: LeaseRejectedEvent) => void;
}

/** An accepted activation: the state file to write and the lease it holds. */
export interface Activated {
  readonly file: ApplianceStateFile;
  readonly lease: ApplianceLease;
  readonly deploymentId: string;
  readonly spiffeId: string;
  /** The box's clock when the answer was checked. */
  readonly at: number;
}

/**
 * Activates the box. Nothing is stored here: the caller writes the returned state strictly.
 * @throws ActivationError (server refusal, bad response).
 */
export async function activateBox(ctx: ActivationContext): Promise<Activated> {
  const opts = ctx.options;
  const deploymentId = deploymentIdFromLicenseToken(opts.licenseToken);
  const trustDomain = opts.trustDomain ?? DEFAULT_TRUST_DOMAIN;
  const spiffeId = applianceSpiffeId(trustDomain, deploymentId);
  const { keyPem, csrPem } = await generateKeyAndCsr({ spiffeId, commonName: deploymentId });

  let response: ActivateResponse;
  const { transport, close } = ctx.transport();
  try {
    response = await createClient(ApplianceService, transport).activate(
      {
        licenseId: opts.licenseId,
        licenseToken: opts.licenseToken,
        fingerprint: opts.fingerprint,
        csrPem,
        agentVersion: opts.agentVersion ?? DEFAULT_AGENT_VERSION,
      },
      { timeoutMs: ctx.callTimeoutMs },
    );
  } catch (error) {
    const reason = errorReason(error);
    if (reason === "LICENSE_REVOKED") await ctx.onRevoked();
    const ce = ConnectError.from(error);
    throw new ActivationError(reason ?? Code[ce.code] ?? "UNKNOWN", `activation refused: ${ce.rawMessage}`, { cause: error });
  } finally {
    close();
  }

  if (response.deploymentId !== deploymentId) {
    throw new ActivationError("DEPLOYMENT_MISMATCH", `control plane activated deployment ${response.deploymentId}, the licence names ${deploymentId}`);
  }
  const jwks = parseJwks(response.jwksJson);
  if (!jwks) throw new ActivationError("JWKS_INVALID", "activation returned no usable JWKS");
  if (!certificateMatchesKey(response.certificatePem, keyPem)) {
    throw new ActivationError("CERTIFICATE_INVALID", "activation returned a certificate that is not for our key");
  }
  const settings = settingsFrom(response.settings);
  const now = ctx.clock();
  const previous = ctx.current();
  // A reinstall keeps the old state file: its seq floor still applies to the new lease.
  const highestSeq = previous?.deploymentId === deploymentId ? previous.highestLeaseSeq : 0;
  const verdict = await checkLease(response.leaseToken, {
    jwks,
    issuer: opts.issuer,
    licenseId: opts.licenseId,
    deploymentId,
    fingerprint: opts.fingerprint,
    highestSeq,
    now,
    maxClockSkewMs: settings.maxClockSkewMs,
  });
  if (!verdict.ok) {
    ctx.onLeaseRejected({ code: verdict.code, message: verdict.message, ...(verdict.seq === undefined ? {} : { seq: verdict.seq }) });
    throw new ActivationError(verdict.code, `activation returned a lease the box cannot accept: ${verdict.message}`);
  }
  const lease = toApplianceLease(verdict.claims);
  const serverTime = response.serverTime ? timestampDate(response.serverTime).getTime() : 0;
  const file = activatedStateFile({
    licenseId: opts.licenseId,
    deploymentId,
    certificatePem: response.certificatePem,
    privateKeyPem: keyPem,
    certificateChainPem: [...response.certificateChainPem],
    leaseToken: response.leaseToken,
    lease,
    jwks,
    settings,
    watermark: Math.max(ctx.current()?.watermark ?? 0, serverTime),
  });
  return { file, lease, deploymentId, spiffeId, at: now };
}

/** What an accepted activation (online or by file) stores. */
export interface ActivatedState {
  readonly licenseId: string;
  readonly deploymentId: string;
  readonly certificatePem: string;
  readonly privateKeyPem: string;
  readonly certificateChainPem: string[];
  readonly leaseToken: string;
  /** The verified lease of `leaseToken`. */
  readonly lease: ApplianceLease;
  readonly jwks: JSONWebKeySet;
  readonly settings: ApplianceRuntimeSettings;
  /** The highest trusted time known (the kept watermark, the server's time); the lease's iat is added. */
  readonly watermark: number;
}

/** The state file of a box that has just been activated. */
export function activatedStateFile(a: ActivatedState): ApplianceStateFile {
  return {
    version: STATE_FILE_VERSION,
    licenseId: a.licenseId,
    deploymentId: a.deploymentId,
    certificatePem: a.certificatePem,
    privateKeyPem: a.privateKeyPem,
    certificateChainPem: a.certificateChainPem,
    pendingPrivateKeyPem: null,
    leaseToken: a.leaseToken,
    highestLeaseSeq: a.lease.seq,
    jwks: a.jwks,
    settings: a.settings,
    watermark: Math.max(a.watermark, a.lease.iat),
    // The control plane just accepted the box: any earlier local lock or suspension is stale.
    lockedByDirective: false,
    suspendedByDirective: false,
    revoked: false,
    pendingAcks: [],
  };
}

/**
 * The deployment id from the licence token's `dep` claim, read WITHOUT verifying the token: the
 * box has no keys yet, and it does not need to trust it — the control plane verifies the token and
 * refuses a CSR for the wrong deployment.
 */
export function deploymentIdFromLicenseToken(licenseToken: string): string {
  let dep: unknown;
  try {
    dep = decodeJwt(licenseToken)["dep"];
  } catch {
    throw new ActivationError("LICENSE_TOKEN_MALFORMED", "licence token is not a JWT");
  }
  if (typeof dep !== "string" || !isValidSpiffeName(dep)) {
    throw new ActivationError("LICENSE_TOKEN_MALFORMED", 'licence token has no usable "dep" (deployment id) claim');
  }
  return dep;
}
