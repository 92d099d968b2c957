/**
 * A Reconcile page is written whole or not at all. SQLite's page is several statements in one
 * transaction, and its multi-row writes are `OR FAIL` (no statement journal: a failing row does
 * not undo the rows before it in the same statement), so a failure part-way must still leave
 * nothing behind: no state, no version bump, no outbox run, no directive. Staged here with a
 * trigger that refuses one row in the middle of the page's last kind, after the other kinds and
 * the first row of that kind were written; PostgreSQL's single statement is held to the same.
 */
import { testDatabases } from "@lcp/testing/db";
import { describe, expect, it } from "vitest";
import type { CallContext } from "../src/core/audit.js";
import { reconcilePage } from "../src/reconcile/reconcile-page.js";
import { pageDeps, seedActive } from "./reconcile-support.js";
import { licensingDatabase } from "./storage-db.js";

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
const call: CallContext = { actor: { kind: "service", id: "fleet-sweep" }, requestId: "test" };
const id = (n: number) => `00000000-0000-7000-8000-${String(n).padStart(12, "0")}`;

describe.each(testDatabases())("a reconcile page that fails part-way ($name)", (tdb) => {
  const store = licensingDatabase(tdb);

  it("leaves every row, the outbox and the directives as they were; the next page applies it all once", async () => {
    const { db, pg, sql } = await store.open();
    const now = new Date();
    const deps = pageDeps(db, now);
    const seed = (n: number, silentMs: number, expiresAt: Date) => seedActive({ pg, sql }, id(n), now, silentMs, expiresAt);
    const inAYear = new Date(now.getTime() + 365 * DAY);
    const ended = new Date(now.getTime() - 1);
    await seed(1, 10 * MINUTE, inAYear); // → GRACE
    await seed(2, 15 * DAY, inAYear); // → LOCKED(OFFLINE): no directive, the silent box locks itself
    await seed(3, 0, ended); // → LOCKED(EXPIRED), with a LOCK directive: written…
    await seed(4, 0, ended); // …then this one is refused, in the same statement
    await seed(5, 0, ended);

    const refused = id(4);
    if (pg) {
      await sql(
        `create function refuse_one() returns trigger language plpgsql as $$ begin
           if new.id = '${refused}' and new.state <> old.state then raise exception 'staged failure'; end if; return new; end $$`,
      );
      await sql("create trigger refuse_one before update on deployment for each row execute function refuse_one()");
    } else {
      await sql(`create trigger refuse_one before update of state on deployment when new.id = '${refused}' begin select raise(fail, 'staged failure'); end`);
    }

    const input = { at: now, afterDeploymentId: "", pageSize: 100, dryRun: false, sweepId: "s", call };
    await expect(reconcilePage(deps, input)).rejects.toThrow(/staged failure/);

    const rows = () => sql<{ id: string; state: string; lock_reason: string | null; version: number | string }>("select id, state, lock_reason, version from deployment order by id");
    const count = async (table: string) => Number((await sql<{ n: number | string }>(`select count(*) as n from ${table}`))[0]!.n);
    expect((await rows()).map((r) => [r.state, r.lock_reason, Number(r.version)])).toEqual(Array(5).fill(["ACTIVE", null, 1]));
    expect(await count("outbox_event")).toBe(0);
    expect(await count("directive")).toBe(0);

    await sql(pg ? "drop trigger refuse_one on deployment" : "drop trigger refuse_one");
    const applied = await reconcilePage(deps, input);
    expect(applied.transitions.map((t) => `${t.deploymentId.slice(-1)} ${t.transition.to.state}(${t.transition.to.lockReason ?? ""})`)).toEqual([
      "1 GRACE()",
      "2 LOCKED(OFFLINE)",
      "3 LOCKED(EXPIRED)",
      "4 LOCKED(EXPIRED)",
      "5 LOCKED(EXPIRED)",
    ]);
    expect((await rows()).map((r) => Number(r.version))).toEqual([2, 2, 2, 2, 2]);
    // One outbox run per kind, and a LOCK for each box whose term ended.
    expect(await count("outbox_event")).toBe(3);
    const directives = await sql<{ deployment_id: string; type: string }>("select deployment_id, type from directive order by deployment_id");
    expect(directives.map((d) => [d.deployment_id, d.type])).toEqual([3, 4, 5].map((n) => [id(n), "LOCK"]));
    expect(await reconcilePage(deps, input)).toMatchObject({ transitions: [], conflicts: 0 });
  });
});
