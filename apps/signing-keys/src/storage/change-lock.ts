/**
 * Serialises key and CA changes across requests, processes and replicas with a lock row per
 * concern (`keys`, `ca`) in `change_lock`.
 */
import type { Database } from "@lcp/persistence";
import type { EntityManager } from "@mikro-orm/knex";

/** The lock rows this app uses. */
export type LockName = "keys" | "ca";

const LOCK_NAMES: readonly LockName[] = ["keys", "ca"];

/** Creates the lock rows if missing (idempotent; safe when several replicas start together). */
export async function ensureLockRows(db: Database): Promise<void> {
  const em = db.em();
  for (const name of LOCK_NAMES) {
    // ON CONFLICT DO NOTHING is spelled the same on SQLite (≥ 3.24) and PostgreSQL.
    await em.execute("insert into change_lock (name, version) values (?, 0) on conflict (name) do nothing", [name], "run");
  }
}

/**
 * Runs `fn` in a transaction that first takes the `name` lock by updating its row. The update is
 * the transaction's first statement on purpose:
 * - PostgreSQL: the row lock is held until commit, so a concurrent change waits and then reads
 *   (READ COMMITTED, fresh snapshot per statement) everything the previous one committed;
 * - SQLite: the first write takes the database write lock before anything is read (what BEGIN
 *   IMMEDIATE does), waiting up to busy_timeout, so no transaction ever has to upgrade a stale
 *   read lock — the case SQLite cannot resolve by waiting.
 */
export async function withChangeLock<T>(db: Database, name: LockName, fn: (em: EntityManager) => Promise<T>): Promise<T> {
  return db.transactional(async (em) => {
    await em.execute("update change_lock set version = version + 1 where name = ?", [name], "run");
    return fn(em);
  });
}
