/**
 * KEK rotation over the stored private keys: which rows hold a wrapped key, which KEK wrapped each,
 * and the re-wrap itself (`npm run rotate-kek`, src/cli/rotate-kek.ts).
 *
 * The procedure (docs/operations.md "Rotate the KEK"): every replica is rolled out with the new
 * `KEK` and the old one as `KEK_PREVIOUS` (they open keys under either, wrap new ones under the
 * new); then {@link rewrapAll} moves every row onto the new KEK; then `KEK_PREVIOUS` is dropped.
 * Readers never stop: a row is re-wrapped in place (same kid/id, same private key), so caches
 * keyed by kid stay right and a reader sees either envelope, both of which it can open.
 */
import type { Database } from "@lcp/persistence";
import { kekFingerprint, unwrapSecret, wrapSecret, wrappedKekFingerprint, type Keyring } from "@lcp/tokens";
import { audit, type AuditActor } from "../audit.js";

/** A table holding private keys wrapped under the KEK, with its key column (also the envelope's AAD). */
interface WrappedTable {
  table: "signing_key" | "appliance_ca";
  id: "kid" | "id";
}

/** Every place a wrapped private key is stored: token signing keys and appliance CAs. */
export const WRAPPED_TABLES: readonly WrappedTable[] = [
  { table: "signing_key", id: "kid" },
  { table: "appliance_ca", id: "id" },
];

interface WrappedRow {
  id: string;
  wrapped: string;
}

/** The most rows one transaction of {@link rewrapAll} re-wraps. */
export const MAX_BATCH_SIZE = 1000;

/** How many stored keys are wrapped under each KEK (by fingerprint; `legacy` = `v1` envelopes, which name none). */
export type KekCensus = Record<string, number>;

async function page(db: Database, { table, id }: WrappedTable, after: string, limit: number): Promise<WrappedRow[]> {
  return db.em().execute<WrappedRow[]>(
    `select ${id} as id, wrapped_private_key as wrapped from ${table} where ${id} > ? order by ${id} limit ?`,
    [after, limit],
  );
}

/** Walks every wrapped row of every table, `batchSize` rows per read. */
async function* rows(db: Database, batchSize: number): AsyncGenerator<{ source: WrappedTable; batch: WrappedRow[] }> {
  for (const source of WRAPPED_TABLES) {
    let after = "";
    for (;;) {
      const batch = await page(db, source, after, batchSize);
      if (batch.length === 0) break;
      yield { source, batch };
      after = batch[batch.length - 1]!.id;
    }
  }
}

/** Counts the stored keys by the KEK that wrapped them, without opening any. */
export async function kekCensus(db: Database): Promise<KekCensus> {
  const census: KekCensus = {};
  for await (const { batch } of rows(db, MAX_BATCH_SIZE)) {
    for (const row of batch) {
      const fp = wrappedKekFingerprint(row.wrapped) ?? "legacy";
      census[fp] = (census[fp] ?? 0) + 1;
    }
  }
  return census;
}

/**
 * Refuses to run with a keyring that cannot open every stored key: a replica started with only
 * the old KEK after a rotation (or only the new one before it) must stop at start, naming the
 * missing KEK, instead of failing on a later Sign or wrapping new keys nobody else can open.
 * `v1` envelopes name no KEK, so those are opened to check.
 */
export async function assertKeysReadable(db: Database, keyring: Keyring): Promise<void> {
  const configured = new Set([keyring.current, ...keyring.previous].map(kekFingerprint));
  const missing = new Map<string, number>();
  for await (const { batch } of rows(db, MAX_BATCH_SIZE)) {
    for (const row of batch) {
      const fp = wrappedKekFingerprint(row.wrapped);
      if (fp === null) unwrapSecret(keyring, row.wrapped, row.id);
      else if (!configured.has(fp)) missing.set(fp, (missing.get(fp) ?? 0) + 1);
    }
  }
  if (missing.size > 0) {
    const list = [...missing].map(([fp, n]) => `${n} under ${fp}`).join(", ");
    throw new Error(
      `stored private keys are wrapped under a key-encryption key that is not configured (${list}); ` +
        `configured: ${[...configured].join(", ")}. Set KEK (and, during a rotation, KEK_PREVIOUS) to the keys they were wrapped under`,
    );
  }
}

/** Options of {@link rewrapAll}. */
export interface RewrapOptions {
  db: Database;
  keyring: Keyring;
  /** Rows per transaction (1..{@link MAX_BATCH_SIZE}); small batches keep writers' waits short. */
  batchSize: number;
  now: () => Date;
  /** Who runs it, for the audit event. */
  actor: AuditActor;
  /** Called after each committed batch (progress lines; tests stop a run midway through it). */
  onBatch?: (progress: { table: string; rewrapped: number }) => void | Promise<void>;
}

/** What a run of {@link rewrapAll} did. */
export interface RewrapResult {
  /** Rows moved onto the current KEK by this run. */
  rewrapped: number;
  /** Rows already under the current KEK (a resumed or repeated run skips them). */
  alreadyCurrent: number;
  /** The current KEK's fingerprint. */
  kek: string;
}

/**
 * Re-wraps every stored private key that is not under the keyring's current KEK, `batchSize`
 * rows per transaction. Idempotent and resumable: a row already under the current KEK is
 * skipped, so a run stopped anywhere is finished by running it again. Each row is updated only
 * if it still holds the envelope that was read (compare-and-set), so two runs at once never
 * overwrite each other. The clear key exists only in this process's memory between unwrap and
 * wrap. Each batch that moved a row records a `signing.kek.rotate` audit event in its transaction.
 */
export async function rewrapAll(options: RewrapOptions): Promise<RewrapResult> {
  const { db, keyring } = options;
  const current = kekFingerprint(keyring.current);
  let rewrapped = 0;
  let alreadyCurrent = 0;
  for await (const { source, batch } of rows(db, options.batchSize)) {
    const stale = batch.filter((row) => wrappedKekFingerprint(row.wrapped) !== current);
    alreadyCurrent += batch.length - stale.length;
    if (stale.length === 0) continue;
    // Opened and re-wrapped before the transaction: no lock is held while AES runs.
    const updates = stale.map((row) => {
      const fp = wrappedKekFingerprint(row.wrapped) ?? "legacy";
      return { row, fp, next: wrapSecret(keyring, unwrapSecret(keyring, row.wrapped, row.id), row.id) };
    });
    const moved = await db.transactional(async (em) => {
      let n = 0;
      const from: Record<string, number> = {};
      for (const { row, fp, next } of updates) {
        const result = await em.execute<{ affectedRows?: number }>(
          `update ${source.table} set wrapped_private_key = ? where ${source.id} = ? and wrapped_private_key = ?`,
          [next, row.id, row.wrapped],
          "run",
        );
        if ((result.affectedRows ?? 0) > 0) {
          n++;
          from[fp] = (from[fp] ?? 0) + 1;
        }
      }
      // Audited with the rows it moved, in their transaction: a run stopped later still left its record.
      if (n > 0) {
        audit(em, { actor: options.actor, reason: "rotate-kek" }, "signing.kek.rotate", { type: "key_encryption_key", id: current }, options.now(), {
          table: source.table,
          rewrapped: n,
          from,
        });
      }
      return n;
    });
    rewrapped += moved;
    await options.onBatch?.({ table: source.table, rewrapped });
  }
  return { rewrapped, alreadyCurrent, kek: current };
}
