/**
 * The signing-keys tables, as MikroORM `defineEntity` schemas (no decorators: tsx/esbuild emit no
 * design-time metadata). One set of entities serves SQLite and PostgreSQL.
 *
 * Private halves are stored only wrapped (AES-256-GCM under the KEK, the row id as AAD), so a
 * database dump or backup never holds a usable private key.
 */
import { defineEntity, type InferEntity } from "@mikro-orm/core";
import type { KeyLifecycleState } from "../keys/lifecycle.js";

/** A token signing key: public JWK in clear, private key wrapped under the KEK. */
export const SigningKeyEntity = defineEntity({
  name: "SigningKey",
  tableName: "signing_key",
  properties: (p) => ({
    kid: p.string().length(64).primary(),
    state: p.string().length(16).$type<KeyLifecycleState>().index(),
    algorithm: p.string().length(16),
    /** The public key as a JWK JSON document (kid, alg, use included). */
    publicJwk: p.text(),
    /** The PKCS#8 private key, wrapped with AES-256-GCM under the KEK (AAD = kid). */
    wrappedPrivateKey: p.text(),
    /**
     * 1 while the key is ACTIVE, NULL otherwise. The unique constraint makes "exactly one ACTIVE
     * key" a property of the database itself, on both drivers (NULLs never collide), so even a
     * bug in the locking could not leave two signing keys.
     */
    activeSlot: p.integer().nullable().unique("signing_key_active_slot_unique"),
    createdAt: p.datetime(),
    activatedAt: p.datetime().nullable(),
    retiredAt: p.datetime().nullable(),
    revokedAt: p.datetime().nullable(),
    revokeReason: p.text().nullable(),
  }),
  indexes: [{ properties: ["createdAt", "kid"], name: "signing_key_created_at_kid_index" }],
});

/** A row of {@link SigningKeyEntity}. */
export type SigningKeyRow = InferEntity<typeof SigningKeyEntity>;

/** An appliance CA: certificate in clear, private key wrapped under the KEK. */
export const ApplianceCaEntity = defineEntity({
  name: "ApplianceCa",
  tableName: "appliance_ca",
  properties: (p) => ({
    id: p.string().length(64).primary(),
    certificatePem: p.text(),
    /** The CA's PKCS#8 private key, wrapped with AES-256-GCM under the KEK (AAD = id). */
    wrappedPrivateKey: p.text(),
    serialNumber: p.string().length(128),
    /** 1 for the current CA, NULL for rotated ones: one current CA, enforced by the database. */
    currentSlot: p.integer().nullable().unique("appliance_ca_current_slot_unique"),
    notBefore: p.datetime(),
    notAfter: p.datetime(),
    createdAt: p.datetime(),
    rotatedAt: p.datetime().nullable(),
  }),
});

/** A row of {@link ApplianceCaEntity}. */
export type ApplianceCaRow = InferEntity<typeof ApplianceCaEntity>;

/**
 * A certificate issued to an appliance. The serial is what a revocation or rebind refuses later,
 * and the validity tells which rotated CAs must stay in the trust bundle.
 */
export const IssuedCertificateEntity = defineEntity({
  name: "IssuedCertificate",
  tableName: "issued_certificate",
  properties: (p) => ({
    serialNumber: p.string().length(128).primary(),
    caId: p.string().length(64).index(),
    deploymentId: p.string().length(255).index(),
    spiffeId: p.text(),
    notBefore: p.datetime(),
    notAfter: p.datetime().index(),
    issuedAt: p.datetime(),
  }),
});

/** A row of {@link IssuedCertificateEntity}. */
export type IssuedCertificateRow = InferEntity<typeof IssuedCertificateEntity>;

/**
 * Lock rows: every key or CA change first updates its row in the same transaction. On PostgreSQL
 * that takes the row lock until commit; on SQLite the write takes the database write lock (as
 * BEGIN IMMEDIATE would) before anything is read. Either way concurrent changes — from this
 * process or from other replicas — run one after the other, each seeing the previous one's result.
 */
export const ChangeLockEntity = defineEntity({
  name: "ChangeLock",
  tableName: "change_lock",
  properties: (p) => ({
    name: p.string().length(32).primary(),
    version: p.integer(),
  }),
});

/** A row of {@link ChangeLockEntity}. */
export type ChangeLockRow = InferEntity<typeof ChangeLockEntity>;
