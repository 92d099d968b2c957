/**
 * The heartbeat's batched writer moves `last_seen_at` without bumping `version`, so a version-only
 * compare-and-set could send a box that beat a moment ago to GRACE on the value read before the
 * beat. Reconcile pins `last_seen_at` too whenever the derived state depends on it. Here the real
 * last-seen writer flushes a beat between Reconcile's page read and its write (the test seam
 * `afterRead`), on both drivers.
 */
import { type CallContext } from "../src/core/audit.js";
import { createOrm, type Database } from "@lcp/persistence";
import { createLogger } from "@lcp/rpc";
import { rawQuery, testDatabases, type TestDatabaseOptions } from "@lcp/testing/db";
import { afterEach, describe, expect, it } from "vitest";
import { noopDirectivePublisher } from "../src/core/directive-publisher.js";
import type { CoreDeps } from "../src/core/deployment-change.js";
import { createLastSeenWriter } from "../src/heartbeat/last-seen-writer.js";
import { reconcilePage } from "../src/reconcile/reconcile-page.js";
import { entities, migrations } from "../src/storage/schema.js";

const MINUTE = 60_000;
const call: CallContext = { actor: { kind: "service", id: "fleet-sweep" }, requestId: "test" };

describe.each(testDatabases())("reconcile and a concurrent beat ($name)", (tdb) => {
  let db: Database | undefined;
  let opts: TestDatabaseOptions | undefined;
  afterEach(async () => {
    await db?.close();
    await opts?.cleanup();
    db = undefined;
    opts = undefined;
  });

  async function setup() {
    opts = tdb.options("licensing");
    db = await createOrm({ ...opts, entities, migrations, logger: createLogger("test", "silent") });
    const log = createLogger("test", "silent");
    const now = new Date();
    const deps: CoreDeps = {
      db,
      now: () => now,
      // Nothing here needs a lease (→ GRACE, → LOCKED); a signature request would be a bug.
      signer: { sign: () => Promise.reject(new Error("no lease is signed on these paths")) },
      publisher: noopDirectivePublisher,
      log,
    };
    const pg = Boolean(opts.databaseUrl);
    const date = (d: Date) => (pg ? d.toISOString() : d.getTime());
    const p = (n: number) => (pg ? `$${n}` : "?");
    const sql = <T = Record<string, unknown>>(q: string, params: unknown[] = []) => rawQuery<T>(opts!, q, params);
    /** An activated deployment stored ACTIVE, last seen `silentMs` ago, its term ending at `expiresAt`. */
    const seed = async (id: string, silentMs: number, expiresAt = new Date(now.getTime() + 365 * 24 * 60 * MINUTE)) => {
      const seen = date(new Date(now.getTime() - silentMs));
      await sql(
        `insert into deployment (id, name, customer, kind, subscription_status, license_expires_at, activated_at, fingerprint_hash, last_seen_at, state, state_changed_at, version, created_at, updated_at)
         values (${p(1)}, 'site', 'c', 'ON_PREM', 'VALID', ${p(2)}, ${p(3)}, '${"a".repeat(64)}', ${p(4)}, 'ACTIVE', ${p(5)}, 1, ${p(6)}, ${p(7)})`,
        [id, date(expiresAt), seen, seen, seen, seen, seen],
      );
    };
    const row = async (id: string) =>
      (await sql<{ state: string; lock_reason: string | null; version: number | string; last_seen_at: unknown }>(
        `select state, lock_reason, version, last_seen_at from deployment where id = ${p(1)}`,
        [id],
      ))[0]!;
    const outbox = async () => Number((await sql<{ n: number | string }>("select count(*) as n from outbox_event"))[0]!.n);
    const writer = createLastSeenWriter({ db, log, flushEveryMs: 60_000 });
    const beat = async (id: string) => {
      writer.seen(id, now);
      await writer.flush();
    };
    const input = { at: now, afterDeploymentId: "", pageSize: 100, dryRun: false, sweepId: "s", call };
    return { deps, seed, row, outbox, beat, input, now };
  }

  it("a box whose beat lands between the page read and the write stays ACTIVE; the next page judges it fresh", async () => {
    const t = await setup();
    const id = "00000000-0000-7000-8000-000000000001";
    await t.seed(id, 10 * MINUTE); // past the default 5 min heartbeat_timeout
    const first = await reconcilePage(t.deps, t.input, { afterRead: () => t.beat(id) });
    expect(first).toMatchObject({ examined: 1, transitions: [], conflicts: 1 });
    expect(await t.row(id)).toMatchObject({ state: "ACTIVE", lock_reason: null });
    expect(Number((await t.row(id)).version)).toBe(1);
    expect(await t.outbox()).toBe(0);

    const again = await reconcilePage(t.deps, t.input);
    expect(again).toMatchObject({ examined: 1, transitions: [], conflicts: 0 });
  });

  it("without the beat the same box goes to GRACE, once", async () => {
    const t = await setup();
    const id = "00000000-0000-7000-8000-000000000002";
    await t.seed(id, 10 * MINUTE);
    const first = await reconcilePage(t.deps, t.input);
    expect(first.transitions.map((x) => `${x.transition.from.state}>${x.transition.to.state}`)).toEqual(["ACTIVE>GRACE"]);
    expect(await t.row(id)).toMatchObject({ state: "GRACE" });
    expect(await t.outbox()).toBe(1);
    expect(await reconcilePage(t.deps, t.input)).toMatchObject({ transitions: [], conflicts: 0 });
    expect(await t.outbox()).toBe(1);
  });

  it("a transition that does not depend on last_seen (term end) still applies, and keeps the fresher last_seen", async () => {
    const t = await setup();
    const id = "00000000-0000-7000-8000-000000000003";
    await t.seed(id, 10 * MINUTE, new Date(t.now.getTime() - 1));
    const before = (await t.row(id)).last_seen_at;
    const first = await reconcilePage(t.deps, t.input, { afterRead: () => t.beat(id) });
    expect(first.transitions.map((x) => `${x.transition.to.state}(${x.transition.to.lockReason})`)).toEqual(["LOCKED(EXPIRED)"]);
    const after = await t.row(id);
    expect(after).toMatchObject({ state: "LOCKED", lock_reason: "EXPIRED" });
    expect(after.last_seen_at).not.toEqual(before);
  });
});
