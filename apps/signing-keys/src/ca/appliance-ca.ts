/**
 * The appliance CA: created on first start, rotated by super_admin, signing appliances' CSRs for
 * `spiffe://<trust-domain>/appliance/<deployment-id>`. Its private key is stored only wrapped
 * under the KEK (AAD = the CA's id); the loaded CA is cached in memory by id.
 */
import { X509Certificate } from "node:crypto";
import { v7 as uuidv7 } from "uuid";
import {
  applianceSpiffeId,
  createCertificateAuthority,
  issueCertificateFromCsr,
  loadCertificateAuthority,
  type CertificateAuthority,
  type PemKeyPair,
} from "@lcp/pki";
import type { Database } from "@lcp/persistence";
import { DomainError } from "@lcp/rpc";
import { unwrapSecret, wrapSecret, type Keyring } from "@lcp/tokens";
import type { EntityManager } from "@mikro-orm/knex";
import { audit, type AuditContext } from "../audit.js";
import { withChangeLock } from "../storage/change-lock.js";
import { ApplianceCaEntity, IssuedCertificateEntity, type ApplianceCaRow } from "../storage/entities.js";
import type { IssueCertificateInput } from "../validate.js";

/** How long an appliance CA certificate is valid. Far beyond any leaf (≤ 397 days) it issues. */
export const APPLIANCE_CA_VALIDITY_DAYS = 3650;

/** An issued appliance certificate, as IssueApplianceCertificate answers. */
export interface IssuedApplianceCertificate {
  certificatePem: string;
  chainPem: string[];
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
  spiffeId: string;
}

/** Options of {@link createApplianceCa}. */
export interface ApplianceCaOptions {
  db: Database;
  /** The key-encryption keys: the new CA is wrapped under the current one, old ones opened under any. */
  kek: Keyring;
  trustDomain: string;
  now: () => Date;
}

/** The appliance CA service. */
export type ApplianceCa = ReturnType<typeof createApplianceCa>;

/** Creates the appliance CA service over `db`. */
export function createApplianceCa(options: ApplianceCaOptions) {
  const { db, kek, now } = options;
  // Loaded CAs by id: unwrapping and importing a key costs far more than the lookup of the current id.
  const loaded = new Map<string, Promise<CertificateAuthority>>();

  function load(row: ApplianceCaRow): Promise<CertificateAuthority> {
    let ca = loaded.get(row.id);
    if (!ca) {
      const keyPem = Buffer.from(unwrapSecret(kek, row.wrappedPrivateKey, row.id)).toString("utf8");
      ca = loadCertificateAuthority({ certPem: row.certificatePem, keyPem });
      ca.catch(() => loaded.delete(row.id));
      loaded.set(row.id, ca);
    }
    return ca;
  }

  async function generate(): Promise<{ id: string; pair: PemKeyPair }> {
    const at = now();
    const id = uuidv7({ msecs: at.getTime() });
    const pair = await createCertificateAuthority({
      commonName: `lcp appliance CA ${at.toISOString().slice(0, 10)} ${id.slice(-12)}`,
      validityDays: APPLIANCE_CA_VALIDITY_DAYS,
      now: at,
    });
    return { id, pair };
  }

  /** Stores a generated CA as the current one (the caller holds the `ca` lock and retires the old one first). */
  function storeCurrent(em: EntityManager, id: string, pair: PemKeyPair, at: Date): ApplianceCaRow {
    const cert = new X509Certificate(pair.certPem);
    const row = em.create(ApplianceCaEntity, {
      id,
      certificatePem: pair.certPem,
      wrappedPrivateKey: wrapSecret(kek, pair.keyPem, id),
      serialNumber: cert.serialNumber.toUpperCase(),
      currentSlot: 1,
      notBefore: new Date(cert.validFrom),
      notAfter: new Date(cert.validTo),
      createdAt: at,
      rotatedAt: null,
    });
    em.persist(row);
    return row;
  }

  async function current(em: EntityManager = db.em()): Promise<ApplianceCaRow> {
    const row = await em.findOne(ApplianceCaEntity, { currentSlot: 1 });
    // Only possible before ensureCa() ran; a bug, not a caller's mistake.
    if (!row) throw new Error("no current appliance CA (ensureCa has not run)");
    return row;
  }

  /**
   * The trust bundle: the current CA first, then rotated CAs (newest first) that are themselves
   * still valid and issued at least one certificate that has not expired yet.
   */
  async function trustBundle(): Promise<string[]> {
    const em = db.em();
    const at = now();
    const cas = await em.find(ApplianceCaEntity, { notAfter: { $gt: at } }, { orderBy: { createdAt: "desc" } });
    const bundle: string[] = [];
    for (const ca of cas) {
      if (ca.currentSlot === 1) {
        bundle.unshift(ca.certificatePem);
        continue;
      }
      const live = await em.count(IssuedCertificateEntity, { caId: ca.id, notAfter: { $gt: at } });
      if (live > 0) bundle.push(ca.certificatePem);
    }
    return bundle;
  }

  return {
    trustBundle,

    /** First start: creates the appliance CA when there is none (once, also with replicas starting together). */
    async ensureCa(ctx: AuditContext): Promise<boolean> {
      if (await db.em().findOne(ApplianceCaEntity, { currentSlot: 1 })) return false;
      const { id, pair } = await generate();
      return withChangeLock(db, "ca", async (em) => {
        if (await em.findOne(ApplianceCaEntity, { currentSlot: 1 })) return false;
        const at = now();
        storeCurrent(em, id, pair, at);
        audit(em, ctx, "signing.ca.rotate", { type: "appliance_ca", id }, at, { previous: null });
        return true;
      });
    },

    /** Replaces the current CA with a new one; the old one stays in the bundle while its certificates live. */
    async rotate(ctx: AuditContext): Promise<{ caCertificatePem: string; trustBundle: string[] }> {
      const { id, pair } = await generate();
      await withChangeLock(db, "ca", async (em) => {
        const at = now();
        const old = await em.findOne(ApplianceCaEntity, { currentSlot: 1 });
        if (old) {
          old.currentSlot = null;
          old.rotatedAt = at;
          // Leave the slot before the new CA takes it (unique constraint, checked per statement).
          await em.flush();
        }
        storeCurrent(em, id, pair, at);
        audit(em, ctx, "signing.ca.rotate", { type: "appliance_ca", id }, at, { previous: old?.id ?? null });
      });
      return { caCertificatePem: pair.certPem, trustBundle: await trustBundle() };
    },

    /**
     * Signs an appliance's CSR with the current CA. The CSR checks (parse, key strength, proof of
     * possession, no other names) come first and refuse with their code before anything is
     * written; the issued serial and its audit event are then written in one transaction.
     */
    async issue(input: IssueCertificateInput, ctx: AuditContext): Promise<IssuedApplianceCertificate> {
      const spiffeId = applianceSpiffeId(options.trustDomain, input.deploymentId);
      const row = await current();
      const at = now();
      if (at.getTime() + input.validityMs > row.notAfter.getTime()) {
        throw new DomainError("VALIDITY_OUT_OF_RANGE", "the certificate would outlive the appliance CA; rotate the CA first", {
          field: "validity",
        });
      }
      const issued = await issueCertificateFromCsr(await load(row), {
        csrPem: input.csrPem,
        spiffeId,
        validityMs: input.validityMs,
        now: at,
      });
      if (!issued.ok) throw new DomainError(issued.code, issued.message, { field: "csr_pem" });
      await db.transactional(async (em) => {
        em.persist(
          em.create(IssuedCertificateEntity, {
            serialNumber: issued.serialNumber,
            caId: row.id,
            deploymentId: input.deploymentId,
            spiffeId,
            notBefore: issued.notBefore,
            notAfter: issued.notAfter,
            issuedAt: at,
          }),
        );
        audit(em, ctx, "appliance.certificate.issue", { type: "deployment", id: input.deploymentId }, at, {
          serialNumber: issued.serialNumber,
          caId: row.id,
          spiffeId,
          notAfter: issued.notAfter.toISOString(),
        });
      });
      return {
        certificatePem: issued.certPem,
        chainPem: [row.certificatePem],
        serialNumber: issued.serialNumber,
        notBefore: issued.notBefore,
        notAfter: issued.notAfter,
        spiffeId,
      };
    },
  };
}
