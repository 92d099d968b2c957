/**
 * What the Reconcile page suites share: the core's dependencies for a page (no box connected, and
 * no lease to sign — → GRACE and → LOCKED need none, so a signature request would be a bug), and
 * a deployment seeded straight into the table, activated and stored ACTIVE.
 */
import { createLogger } from "@lcp/rpc";
import type { Database } from "@lcp/persistence";
import { noopDirectivePublisher } from "../src/core/directive-publisher.js";
import type { CoreDeps } from "../src/core/deployment-change.js";
import type { StorageDb } from "./storage-db.js";

/** The core's dependencies at a fixed `now`. */
export function pageDeps(db: Database, now: Date): CoreDeps {
  return {
    db,
    now: () => now,
    signer: { sign: () => Promise.reject(new Error("no lease is signed on these paths")) },
    publisher: noopDirectivePublisher,
    log: createLogger("test", "silent"),
  };
}

/** Seeds deployment `id`, activated and stored ACTIVE (version 1), last seen `silentMs` before `now`, its term ending at `expiresAt`. */
export async function seedActive(store: Pick<StorageDb, "pg" | "sql">, id: string, now: Date, silentMs: number, expiresAt: Date): Promise<void> {
  const { pg, sql } = store;
  const date = (d: Date) => (pg ? d.toISOString() : d.getTime());
  const p = (n: number) => (pg ? `$${n}` : "?");
  const seen = date(new Date(now.getTime() - silentMs));
  await sql(
    `insert into deployment (id, name, customer, kind, subscription_status, license_expires_at, activated_at, fingerprint_hash, last_seen_at, state, state_changed_at, version, created_at, updated_at)
     values (${p(1)}, 'site', 'c', 'ON_PREM', 'VALID', ${p(2)}, ${p(3)}, '${"a".repeat(64)}', ${p(4)}, 'ACTIVE', ${p(5)}, 1, ${p(6)}, ${p(7)})`,
    [id, date(expiresAt), seen, seen, seen, seen, seen],
  );
}
