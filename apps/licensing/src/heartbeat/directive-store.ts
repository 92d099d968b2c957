/**
 * Directives as the heartbeat work stores them: pending (unacknowledged) ones for redelivery,
 * acknowledgements, and the three writers that create directives outside a state change — a
 * lease renewal (RENEW_LEASE), a certificate renewal (RENEW_CERTIFICATE) and an operator's
 * SendDirective. Each writes its row in a transaction and hands it to the publisher after commit,
 * exactly like the change path (core/deployment-change.ts) does for state directives.
 */
import { deriveState, leaseLifetimeMs, leaseStateFor, nextLeaseSeq } from "@lcp/domain";
import type { Directive } from "@lcp/proto/licensing/v1/types_pb";
import type { EntityManager } from "@mikro-orm/knex";
import { v7 as uuidv7 } from "uuid";
import { recordEvent, type AuditSpec, type CallContext } from "../core/audit.js";
import { loadForDecision, publishSafely, type CoreDeps } from "../core/deployment-change.js";
import { signLease } from "../core/signer.js";
import type { DirectiveTypeName } from "@lcp/rpc";
import { directiveToProto, type DirectivePayload } from "../mapping.js";
import { CertificateEntity, DirectiveEntity, LicenseEntity, type DirectiveRow } from "../storage/entities.js";
import { compareAndSetDeployment } from "../storage/repository.js";

/** Directives redelivered per read at most (those after them follow once these are acked, on a later read). */
export const PENDING_DIRECTIVES_LIMIT = 100;

/**
 * The unacknowledged directives of a deployment, oldest first. Only those written since the
 * current box activated (`since`): a LOCK written by a rebind was meant for the OLD box and must
 * never reach the replacement that activated afterwards.
 */
export async function loadPendingDirectives(em: EntityManager, deploymentId: string, since: Date | null): Promise<DirectiveRow[]> {
  return em.find(
    DirectiveEntity,
    { deploymentId, ackedAt: null, ...(since ? { createdAt: { $gte: since } } : {}) },
    { orderBy: { id: "asc" }, disableIdentityMap: true, limit: PENDING_DIRECTIVES_LIMIT },
  );
}

/** Marks directives of `deploymentId` acknowledged; ids of other deployments are ignored. Returns how many. */
export async function ackDirectives(em: EntityManager, deploymentId: string, ids: readonly string[], now: Date): Promise<number> {
  if (ids.length === 0) return 0;
  return em.nativeUpdate(DirectiveEntity, { id: { $in: [...ids] }, deploymentId, ackedAt: null }, { ackedAt: now });
}

/** A directive row ready to insert. */
export function newDirectiveRow(deploymentId: string, type: DirectiveTypeName, payload: DirectivePayload, now: Date): DirectiveRow {
  return {
    // Monotonic v7 within the process: redelivery orders by id (see deployment-change.ts).
    id: uuidv7(),
    deploymentId,
    type,
    payload: JSON.stringify(payload),
    createdAt: now,
    ackedAt: null,
  } as DirectiveRow;
}

/** What a lease renewal produced. */
export interface RenewedLease {
  directive: Directive;
  seq: number;
  issuedAt: Date;
  token: string;
  /** Whether a connected box got it now. */
  delivered: boolean;
}

const MAX_ATTEMPTS = 8;

/**
 * Signs a fresh lease for the deployment's current state and stores it as a RENEW_LEASE directive,
 * then publishes it. The licence's `lease_seq` and the directive are written under a
 * compare-and-set on the deployment's version, so a renewal racing a state change (which signs
 * its own lease) can never hand out two leases with one seq: the loser re-signs with the next.
 * Returns null when no lease may be issued now (PENDING, LOCKED, unbound).
 */
export async function renewLease(
  deps: CoreDeps,
  deploymentId: string,
  reason: string,
  audited?: { call: CallContext; audit: AuditSpec },
): Promise<RenewedLease | null> {
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    const loaded = await loadForDecision(deps, deploymentId);
    const { deployment, license, facts, settings, now } = loaded;
    const derived = deriveState(facts, now.getTime(), settings);
    const status = leaseStateFor(derived);
    if (!status || !license || !facts.boundFingerprintHash) return null;
    const seq = nextLeaseSeq(license.leaseSeq);
    const token = await signLease(deps.signer, {
      licenseId: license.id,
      deploymentId,
      fingerprintHash: facts.boundFingerprintHash,
      status,
      seq,
      issuedAt: now,
      // The lease's lifetime: the grace window, or air_gapped_lease for an air-gapped box.
      graceWindowMs: leaseLifetimeMs(facts, settings),
    });
    const row = newDirectiveRow(deploymentId, "RENEW_LEASE", { reason, leaseToken: token }, now);
    const committed = await deps.db.transactional(async (em) => {
      if (!(await compareAndSetDeployment(em, deploymentId, deployment.version, { updatedAt: now }))) return false;
      await em.nativeUpdate(LicenseEntity, { id: license.id }, { leaseSeq: seq, leaseIssuedAt: now });
      await em.insert(DirectiveEntity, row);
      if (audited) recordEvent(em, audited.call, { ...audited.audit, details: { ...audited.audit.details, directiveId: row.id, leaseSeq: seq } }, now);
      return true;
    });
    if (!committed) continue;
    const directive = directiveToProto(row);
    const delivered = await publishSafely(deps, deploymentId, [directive]);
    return { directive, seq, issuedAt: now, token, delivered };
  }
  return null;
}

/**
 * The highest lease seq a box's report may raise its licence's counter to: far above any real
 * count, and inside PostgreSQL's 4-byte integer column.
 */
const MAX_REPORTED_LEASE_SEQ = 1_000_000_000;

/**
 * Raises the licence's `lease_seq` to the seq the box reports it has seen, when that is higher:
 * the database was restored from a backup taken before the box's last lease. Without it the
 * next lease would repeat a seq the box has already seen, which the box refuses, and it would
 * run out its lease and lock. Only the box's own licence counter moves (it is authenticated as
 * the bound box), and only upwards. Returns the seq now stored.
 */
export async function catchUpLeaseSeq(deps: CoreDeps, licenseId: string, deploymentId: string, stored: number, reported: number): Promise<number> {
  if (reported <= stored || reported > MAX_REPORTED_LEASE_SEQ) return stored;
  await deps.db.em().nativeUpdate(LicenseEntity, { id: licenseId, leaseSeq: { $lt: reported } }, { leaseSeq: reported });
  deps.log.warn({ deploymentId, stored, reported }, "the box has seen a newer lease than this database holds (restored from a backup?); leases continue above it");
  return reported;
}

/** Stores one directive (with its audit event, if any) and publishes it; returns it and whether it was pushed. */
export async function storeDirective(
  deps: CoreDeps,
  call: CallContext,
  deploymentId: string,
  type: DirectiveTypeName,
  payload: DirectivePayload,
  audit: AuditSpec | null,
  extra?: (em: EntityManager, now: Date) => Promise<void>,
): Promise<{ directive: Directive; delivered: boolean }> {
  const now = deps.now();
  const row = newDirectiveRow(deploymentId, type, payload, now);
  await deps.db.transactional(async (em) => {
    await extra?.(em, now);
    await em.insert(DirectiveEntity, row);
    if (audit) recordEvent(em, call, { ...audit, details: { ...audit.details, directiveId: row.id } }, now);
  });
  const directive = directiveToProto(row);
  const delivered = await publishSafely(deps, deploymentId, [directive]);
  return { directive, delivered };
}

/** The certificate row to record for a renewed appliance certificate (only recorded serials pass mTLS). */
export function certificateRecorder(
  deploymentId: string,
  licenseId: string,
  fingerprintHash: string,
  cert: { serialNumber: string; notAfter: Date },
): (em: EntityManager, now: Date) => Promise<void> {
  return async (em, now) => {
    await em.insert(CertificateEntity, {
      serialNumber: cert.serialNumber,
      deploymentId,
      licenseId,
      fingerprintHash,
      issuedAt: now,
      notAfter: cert.notAfter,
      revokedAt: null,
      revokeReason: null,
    });
  };
}

/** What a certificate renewal came to: recorded (and sent), or refused because the box is no longer the one admitted. */
export type CertificateRenewalOutcome = "recorded" | "refused";

/**
 * Records a renewed appliance certificate and its RENEW_CERTIFICATE directive, but only while the
 * deployment is still what the stream was admitted under: the licence not revoked and still bound
 * to `fingerprintHash`. The check and the write share one transaction under a compare-and-set on
 * the deployment's version, so a revoke or rebind committed meanwhile (they revoke every recorded
 * serial in their own compare-and-set) either sees this serial and revokes it, or makes this
 * renewal re-check and refuse: a revoked deployment never keeps a serial that passes mTLS.
 */
export async function storeRenewedCertificate(
  deps: CoreDeps,
  deploymentId: string,
  fingerprintHash: string,
  cert: { serialNumber: string; notAfter: Date; certificatePem: string; chainPem: string[] },
): Promise<CertificateRenewalOutcome> {
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    const { deployment, license, facts, now } = await loadForDecision(deps, deploymentId);
    if (!license || license.revokedAt || facts.licenseRevoked || facts.boundFingerprintHash !== fingerprintHash) return "refused";
    const row = newDirectiveRow(deploymentId, "RENEW_CERTIFICATE", { reason: "certificate renewal", certificatePem: cert.certificatePem, certificateChainPem: cert.chainPem }, now);
    const committed = await deps.db.transactional(async (em) => {
      if (!(await compareAndSetDeployment(em, deploymentId, deployment.version, { updatedAt: now }))) return false;
      await certificateRecorder(deploymentId, license.id, fingerprintHash, cert)(em, now);
      await em.insert(DirectiveEntity, row);
      return true;
    });
    if (!committed) continue;
    await publishSafely(deps, deploymentId, [directiveToProto(row)]);
    return "recorded";
  }
  // The deployment kept changing: refuse rather than record on facts never confirmed; the box asks again.
  return "refused";
}
