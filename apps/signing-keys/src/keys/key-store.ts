/**
 * The signing keys in storage: every change runs under the `keys` change lock, applies the pure
 * lifecycle rules, and writes its audit event in the same transaction. Private keys are wrapped
 * under the KEK (AAD = kid) before they reach the ORM and unwrapped only for the signer.
 */
import { generateSigningKey, unwrapSecret, wrapSecret, type GeneratedSigningKey, type Keyring } from "@lcp/tokens";
import type { Database } from "@lcp/persistence";
import { DomainError } from "@lcp/rpc";
import type { EntityManager } from "@mikro-orm/knex";
import type { FilterQuery } from "@mikro-orm/core";
import { audit, type AuditContext } from "../audit.js";
import { withChangeLock } from "../storage/change-lock.js";
import { SigningKeyEntity, type SigningKeyRow } from "../storage/entities.js";
import type { KeyCursor, ListKeysQuery } from "../validate.js";
import { needsInitialKeys, planRotation, retireVerdict, revokeVerdict, type KeyChangeVerdict } from "./lifecycle.js";

/** What a rotation did. */
export interface RotationResult {
  activated: SigningKeyRow;
  retired: SigningKeyRow[];
  next: SigningKeyRow;
}

/** The ACTIVE key's private half, unwrapped, for the signer. */
export interface ActiveKeyMaterial {
  kid: string;
  privateKeyPkcs8Pem: string;
}

/** Options of {@link createKeyStore}. */
export interface KeyStoreOptions {
  db: Database;
  /** The key-encryption keys: new keys are wrapped under the current one, old ones opened under any. */
  kek: Keyring;
  /** The clock; tests inject one. */
  now: () => Date;
  /** Called after every committed change that may alter the ACTIVE key or the JWKS. */
  onChange?: () => void;
}

/** The signing-key store: queries and locked, audited changes. */
export type KeyStore = ReturnType<typeof createKeyStore>;

const RESOURCE = "signing_key";

/** Creates the signing-key store over `db`. */
export function createKeyStore(options: KeyStoreOptions) {
  const { db, kek, now } = options;
  const changed = () => options.onChange?.();

  function newRow(em: EntityManager, key: GeneratedSigningKey, at: Date): SigningKeyRow {
    const row = em.create(SigningKeyEntity, {
      kid: key.kid,
      state: "NEXT",
      algorithm: "EdDSA",
      publicJwk: JSON.stringify(key.publicJwk),
      // AAD = kid: a wrapped key copied onto another row fails authentication instead of signing
      // under the wrong kid.
      wrappedPrivateKey: wrapSecret(kek, key.privateKeyPkcs8Pem, key.kid),
      activeSlot: null,
      createdAt: at,
      activatedAt: null,
      retiredAt: null,
      revokedAt: null,
      revokeReason: null,
    });
    em.persist(row);
    return row;
  }

  /** Creates a NEXT key inside the caller's locked transaction, audited. */
  function createNext(em: EntityManager, ctx: AuditContext, key: GeneratedSigningKey, at: Date): SigningKeyRow {
    const row = newRow(em, key, at);
    audit(em, ctx, "signing.key.create", { type: RESOURCE, id: row.kid }, at, { state: "NEXT" });
    return row;
  }

  /**
   * The rotation itself, inside a locked transaction. `fresh` holds pre-generated keys (key
   * generation stays outside the lock): one for the new NEXT, one more if there is no NEXT to
   * activate.
   */
  async function rotateLocked(em: EntityManager, ctx: AuditContext, fresh: GeneratedSigningKey[]): Promise<RotationResult> {
    const at = now();
    const current = await em.find(SigningKeyEntity, { state: { $in: ["NEXT", "ACTIVE"] } });
    const plan = planRotation(current);
    let activated: SigningKeyRow | undefined = plan.activate ? current.find((k) => k.kid === plan.activate) : undefined;
    if (!activated) activated = createNext(em, ctx, fresh.pop()!, at);

    const retired: SigningKeyRow[] = [];
    for (const kid of plan.retire) {
      const row = current.find((k) => k.kid === kid)!;
      row.state = "RETIRED";
      row.activeSlot = null;
      row.retiredAt = at;
      retired.push(row);
      audit(em, ctx, "signing.key.retire", { type: RESOURCE, id: kid }, at, { from: "ACTIVE", to: "RETIRED" });
    }
    // The old key leaves the active slot in its own flush before the new one takes it: the
    // unique constraint is checked per statement, and the order of one flush's UPDATEs is the ORM's.
    await em.flush();

    activated.state = "ACTIVE";
    activated.activeSlot = 1;
    activated.activatedAt = at;
    audit(em, ctx, "signing.key.activate", { type: RESOURCE, id: activated.kid }, at, { from: "NEXT", to: "ACTIVE" });
    const next = createNext(em, ctx, fresh.pop()!, at);
    await em.flush();
    return { activated, retired, next };
  }

  function refuse(verdict: Extract<KeyChangeVerdict, { ok: false }>, kid: string): DomainError {
    return new DomainError(verdict.code, verdict.message, { kid, state: verdict.state });
  }

  async function findOrNotFound(em: EntityManager, kid: string): Promise<SigningKeyRow> {
    const row = await em.findOne(SigningKeyEntity, { kid });
    if (!row) throw new DomainError("NOT_FOUND", `no signing key with kid ${JSON.stringify(kid)}`, { kid });
    return row;
  }

  return {
    /** One page of keys, newest first; `nextCursor` is set when more may follow. */
    async list(query: ListKeysQuery): Promise<{ keys: SigningKeyRow[]; nextCursor: KeyCursor | null }> {
      const where: FilterQuery<SigningKeyRow>[] = [];
      if (query.states.length > 0) where.push({ state: { $in: query.states } });
      if (query.after) {
        const { createdAt, kid } = query.after;
        where.push({ $or: [{ createdAt: { $lt: createdAt } }, { createdAt, kid: { $lt: kid } }] });
      }
      const rows = await db.em().find(SigningKeyEntity, where.length > 0 ? { $and: where } : {}, {
        orderBy: [{ createdAt: "desc" }, { kid: "desc" }],
        limit: query.pageSize + 1,
      });
      const more = rows.length > query.pageSize;
      const keys = more ? rows.slice(0, query.pageSize) : rows;
      const last = keys[keys.length - 1];
      return { keys, nextCursor: more && last ? { createdAt: last.createdAt, kid: last.kid } : null };
    },

    /** Every published key (NEXT, ACTIVE, RETIRED), for the JWKS. */
    async published(): Promise<SigningKeyRow[]> {
      return db.em().find(SigningKeyEntity, { state: { $in: ["NEXT", "ACTIVE", "RETIRED"] } });
    },

    /** The ACTIVE key's kid, or null when no key may sign. One indexed lookup. */
    async activeKid(): Promise<string | null> {
      const row = await db.em().findOne(SigningKeyEntity, { activeSlot: 1 }, { fields: ["kid", "state"] });
      return row && row.state === "ACTIVE" ? row.kid : null;
    },

    /** The ACTIVE key's private half, unwrapped; null when there is none (or it changed meanwhile). */
    async activeKeyMaterial(): Promise<ActiveKeyMaterial | null> {
      const row = await db.em().findOne(SigningKeyEntity, { activeSlot: 1 });
      if (!row || row.state !== "ACTIVE") return null;
      const pem = Buffer.from(unwrapSecret(kek, row.wrappedPrivateKey, row.kid)).toString("utf8");
      return { kid: row.kid, privateKeyPkcs8Pem: pem };
    },

    /** Creates a NEXT key (published, not signing). */
    async create(ctx: AuditContext): Promise<SigningKeyRow> {
      const key = await generateSigningKey();
      const row = await withChangeLock(db, "keys", async (em) => createNext(em, ctx, key, now()));
      changed();
      return row;
    },

    /** NEXT → ACTIVE → RETIRED, then a fresh NEXT; exactly one ACTIVE key afterwards. */
    async rotate(ctx: AuditContext): Promise<RotationResult> {
      const fresh = [await generateSigningKey(), await generateSigningKey()];
      try {
        return await withChangeLock(db, "keys", (em) => rotateLocked(em, ctx, fresh));
      } finally {
        // Also after a failure: the transaction may have committed before the error reached us.
        changed();
      }
    },

    /** Retires a key: stops signing, still verifies. */
    async retire(kid: string, ctx: AuditContext): Promise<SigningKeyRow> {
      const row = await withChangeLock(db, "keys", async (em) => {
        const key = await findOrNotFound(em, kid);
        const verdict = retireVerdict(key.state);
        if (!verdict.ok) throw refuse(verdict, kid);
        if (!verdict.changed) return key;
        const at = now();
        const from = key.state;
        key.state = "RETIRED";
        key.retiredAt = at;
        audit(em, ctx, "signing.key.retire", { type: RESOURCE, id: kid }, at, { from, to: "RETIRED" });
        return key;
      });
      changed();
      return row;
    },

    /** Revokes a key: removed from the JWKS; revoking the ACTIVE key leaves no signing key until a rotation. */
    async revoke(kid: string, ctx: AuditContext): Promise<SigningKeyRow> {
      const row = await withChangeLock(db, "keys", async (em) => {
        const key = await findOrNotFound(em, kid);
        const verdict = revokeVerdict(key.state);
        if (!verdict.ok) throw refuse(verdict, kid);
        if (!verdict.changed) return key;
        const at = now();
        const from = key.state;
        key.state = "REVOKED";
        key.activeSlot = null;
        key.revokedAt = at;
        key.revokeReason = ctx.reason || null;
        audit(em, ctx, "signing.key.revoke", { type: RESOURCE, id: kid }, at, { from, to: "REVOKED", wasActive: verdict.wasActive });
        return key;
      });
      changed();
      return row;
    },

    /**
     * First start: on a database that has never held a key, create the first ACTIVE key (and its
     * NEXT). Runs under the lock, so replicas starting together create them once.
     */
    async ensureInitialKeys(ctx: AuditContext): Promise<RotationResult | null> {
      const fresh = [await generateSigningKey(), await generateSigningKey()];
      const result = await withChangeLock(db, "keys", async (em) =>
        needsInitialKeys(await em.count(SigningKeyEntity, {})) ? rotateLocked(em, ctx, fresh) : null,
      );
      if (result) changed();
      return result;
    },
  };
}
