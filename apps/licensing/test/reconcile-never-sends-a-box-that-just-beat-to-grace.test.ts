/**
 * The heartbeat's batched writer moves `last_seen_at` without bumping `version`, so a version-only
 * compare-and-set could send a box that beat a moment ago to GRACE on the value read before the
 * beat. Here a beat — the writer's flush, an UPDATE of `last_seen_at` alone — lands between
 * Reconcile's read of a page and its write, on both drivers:
 * - PostgreSQL reads and writes a page in one statement, so the beat is staged by holding its row
 *   lock until that statement waits on it: the statement's UPDATE then re-checks the row it locked
 *   and its compare-and-set, pinned on `last_seen_at`, fails (a conflict);
 * - SQLite's page is one transaction that reads, then writes; the beat commits from another
 *   connection in between (the `afterRead` seam), the stale read can no longer write, and the page
 *   is re-run on fresh facts.
 * Either way the box stays ACTIVE, nothing is audited, and a transition that does not depend on
 * `last_seen_at` (term end) still applies without overwriting the fresher beat.
 */
import { testDatabases } from "@lcp/testing/db";
import pg from "pg";
import { describe, expect, it } from "vitest";
import type { CallContext } from "../src/core/audit.js";
import type { ReconcilePageResult } from "../src/reconcile/page-types.js";
import { reconcilePage } from "../src/reconcile/reconcile-page.js";
import { pageDeps, seedActive } from "./reconcile-support.js";
import { licensingDatabase } from "./storage-db.js";

const MINUTE = 60_000;
const call: CallContext = { actor: { kind: "service", id: "fleet-sweep" }, requestId: "test" };

describe.each(testDatabases())("reconcile and a concurrent beat ($name)", (tdb) => {
  const store = licensingDatabase(tdb);

  async function setup() {
    const { db, opts: o, pg: isPg, sql } = await store.open();
    const now = new Date();
    const deps = pageDeps(db, now);
    const date = (d: Date) => (isPg ? d.toISOString() : d.getTime());
    const p = (n: number) => (isPg ? `$${n}` : "?");
    /** An activated deployment stored ACTIVE, last seen `silentMs` ago, its term ending at `expiresAt`. */
    const seed = (id: string, silentMs: number, expiresAt = new Date(now.getTime() + 365 * 24 * 60 * MINUTE)) =>
      seedActive({ pg: isPg, sql }, id, now, silentMs, expiresAt);
    const row = async (id: string) =>
      (await sql<{ state: string; lock_reason: string | null; version: number | string; last_seen_at: unknown }>(
        `select state, lock_reason, version, last_seen_at from deployment where id = ${p(1)}`,
        [id],
      ))[0]!;
    const outbox = async () => Number((await sql<{ n: number | string }>("select count(*) as n from outbox_event"))[0]!.n);
    const beatSql = `update deployment set last_seen_at = ${p(1)} where id = ${p(2)}`;
    const input = { at: now, afterDeploymentId: "", pageSize: 100, dryRun: false, sweepId: "s", call };

    /** Reconciles the page with a beat of `id` landing between its read and its write. */
    async function reconcileRacingABeat(id: string): Promise<ReconcilePageResult> {
      if (!isPg) {
        let beaten = false;
        return reconcilePage(deps, input, {
          afterRead: async () => {
            if (beaten) return;
            beaten = true;
            await sql(beatSql, [date(now), id]);
          },
        });
      }
      const beat = new pg.Client({ connectionString: o.databaseUrl, options: `-c search_path=${o.schema}` });
      await beat.connect();
      try {
        await beat.query("begin");
        await beat.query(beatSql, [date(now), id]);
        const { pid } = (await beat.query<{ pid: number }>("select pg_backend_pid() as pid")).rows[0]!;
        const page = reconcilePage(deps, input);
        // Commit the beat only once Reconcile's statement waits on the row: it has read the page.
        let waited = false;
        for (let i = 0; i < 500 && !waited; i++) {
          const blocked = await sql<{ n: number | string }>("select count(*) as n from pg_stat_activity where $1 = any(pg_blocking_pids(pid))", [pid]);
          waited = Number(blocked[0]!.n) > 0;
          if (!waited) await new Promise((r) => setTimeout(r, 10));
        }
        expect(waited).toBe(true);
        await beat.query("commit");
        return await page;
      } finally {
        await beat.end();
      }
    }
    return { deps, seed, row, outbox, input, now, isPg, reconcileRacingABeat };
  }

  it("a box whose beat lands between the page read and the write stays ACTIVE; the next page judges it fresh", async () => {
    const t = await setup();
    const id = "00000000-0000-7000-8000-000000000001";
    await t.seed(id, 10 * MINUTE); // past the default 5 min heartbeat_timeout
    const first = await t.reconcileRacingABeat(id);
    // PostgreSQL's compare-and-set lost on the pinned last_seen_at; SQLite re-ran the page fresh.
    expect(first).toMatchObject({ examined: 1, transitions: [], conflicts: t.isPg ? 1 : 0 });
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
    const first = await t.reconcileRacingABeat(id);
    expect(first.transitions.map((x) => `${x.transition.to.state}(${x.transition.to.lockReason})`)).toEqual(["LOCKED(EXPIRED)"]);
    const after = await t.row(id);
    expect(after).toMatchObject({ state: "LOCKED", lock_reason: "EXPIRED" });
    expect(after.last_seen_at).not.toEqual(before);
    expect(await t.outbox()).toBe(1);
  });
});
