/**
 * An air-gapped box and the control plane's side of the file exchange, played with real crypto:
 * the request is verified as licensing would (`verifyActivationRequest` / `verifyRenewalRequest`),
 * the certificate is issued from its CSR by the appliance CA, the lease is a real Ed25519 lease
 * token, and the response is signed by licensing's service certificate (`signOfflineResponse`).
 * It plays the contract, not the licensing app.
 */
import { createAppliance, type Appliance, type ApplianceOptions } from "@lcp/appliance-sdk";
import { issueCertificateFromCsr, loadCertificateAuthority } from "@lcp/pki";
import {
  buildJwks,
  signOfflineResponse,
  verifyActivationRequest,
  verifyRenewalRequest,
  type OfflineLockReason,
  type GeneratedSigningKey,
} from "@lcp/tokens";
import { DEPLOYMENT_ID, FINGERPRINT, ISSUER, LICENSE_ID } from "./scripted-server.js";
import { createWorld, type World } from "./fixture.js";

/** How the control plane answers one request; each field overrides what an honest answer says. */
export interface AnswerOptions {
  /** LOCKED with this reason (no lease). */
  locked?: OfflineLockReason;
  st?: "ACTIVE" | "SUSPENDED";
  seq?: number;
  /** The nonce to echo (default the request's). */
  nonce?: string;
  /** The fingerprint hash to name (default the request's). */
  fph?: string;
  dep?: string;
  sub?: string;
  /** Renew-at, seconds after the answer (default half the lease). */
  renewAfterS?: number;
  /** Sign with a certificate other than licensing's (e.g. the foreign CA's). */
  signer?: { certPem: string; keyPem: string };
  /** The lease signing key (default the server's, which the answer's JWKS holds). */
  leaseKey?: GeneratedSigningKey;
  /** The certificate to put in an activation answer (default one issued from the request's CSR). */
  certificatePem?: string;
}

/** An air-gapped test world: a box factory without baseUrl and a control plane that answers files. */
export interface AirGap {
  world: World;
  /** A box without baseUrl on the world's clock and state file. */
  make(extra?: Partial<ApplianceOptions>): Promise<Appliance>;
  /** The control plane's answer to an activation request file. */
  answerActivation(request: string, options?: AnswerOptions): Promise<string>;
  /** The control plane's answer to a renewal request file. */
  answerRenewal(request: string, options?: AnswerOptions): Promise<string>;
}

/** Lease length of the world (the scripted server signs leases of this grace window). */
export const LEASE_MS = 3_600_000;

export async function createAirGap(): Promise<AirGap> {
  const world = await createWorld({ graceWindowMs: LEASE_MS, maxClockSkewMs: 5_000 });
  const { server, clock } = world;
  const applianceCa = await loadCertificateAuthority(server.pki.applianceCa);
  const licensing = await server.pki.service("licensing");
  const made: Appliance[] = [];
  const close = world.close;
  world.close = async () => {
    for (const box of made) await box.stop();
    await close();
  };

  const common = (nonce: string, fph: string, o: AnswerOptions) => {
    const now = clock.trueNow();
    const lease = o.locked ? undefined : server.signLease({ ...(o.seq === undefined ? {} : { seq: o.seq }), st: o.st ?? "ACTIVE", ...(o.leaseKey ? { key: o.leaseKey } : {}) });
    return {
      iss: ISSUER,
      sub: o.sub ?? LICENSE_ID,
      dep: o.dep ?? DEPLOYMENT_ID,
      fph: o.fph ?? fph,
      nce: o.nonce ?? nonce,
      st: o.locked ? ("LOCKED" as const) : (o.st ?? "ACTIVE"),
      ...(o.locked ? { rsn: o.locked } : { lse: lease!, ren: Math.floor(now / 1000) + (o.renewAfterS ?? LEASE_MS / 2000) }),
      jwks: buildJwks([server.signingKey.publicJwk]),
    };
  };
  const signer = (o: AnswerOptions) => {
    const s = o.signer ?? licensing;
    return { privateKeyPem: s.keyPem, certificateChainPem: [s.certPem] };
  };

  return {
    world,
    async make(extra = {}) {
      const box = await createAppliance({
        caPem: server.pki.ca.certPem,
        licenseId: LICENSE_ID,
        licenseToken: server.licenseToken,
        fingerprint: FINGERPRINT,
        stateFile: world.stateFile,
        issuer: ISSUER,
        clock: clock.now,
        scheduler: clock,
        ...extra,
      });
      made.push(box);
      return box;
    },
    async answerActivation(request, o = {}) {
      const verified = await verifyActivationRequest(request);
      if (!verified.ok) throw new Error(`activation request refused: ${verified.code} ${verified.message}`);
      const issued = await issueCertificateFromCsr(applianceCa, { csrPem: verified.claims.csr, spiffeId: server.pki.applianceId(DEPLOYMENT_ID), validityMs: 30 * 86_400_000 });
      if (!issued.ok) throw new Error(issued.message);
      return signOfflineResponse(
        "activationResponse",
        {
          ...common(verified.claims.nce, verified.claims.fph, o),
          crt: o.certificatePem ?? issued.certPem,
          chn: [server.pki.applianceCa.certPem],
          set: { heartbeatIntervalMs: 1_000, graceWindowMs: LEASE_MS, maxClockSkewMs: 5_000 },
        },
        signer(o),
        new Date(clock.trueNow()),
      );
    },
    async answerRenewal(request, o = {}) {
      const verified = await verifyRenewalRequest(request);
      if (!verified.ok) throw new Error(`renewal request refused: ${verified.code} ${verified.message}`);
      return signOfflineResponse("renewalResponse", common(verified.claims.nce, verified.claims.fph, o), signer(o), new Date(clock.trueNow()));
    },
  };
}
