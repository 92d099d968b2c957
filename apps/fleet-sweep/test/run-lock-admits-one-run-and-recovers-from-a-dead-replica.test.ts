/**
 * The run lock on both drivers: one run at a time across replicas (store instances on one
 * database), refusals name the running sweep, a replica that died lets its lease lapse and the
 * next run takes over and marks the abandoned run FAILED; and the committed migrations match the
 * entities.
 */
import { assertMigrationsUpToDate, createOrm, newAuditEvent, type Database } from "@lcp/persistence";
import { testDatabases, type TestDatabaseOptions } from "@lcp/testing/db";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { entities, migrations } from "../src/storage/schema.js";
import { createSweepStore, type BeginRun, type SweepProgress } from "../src/storage/sweep-store.js";

const begin: BeginRun = { trigger: "ON_DEMAND", dryRun: false, requestedBy: "alice", pageSize: 100, derivedAt: new Date() };
const empty: SweepProgress = { examined: 0, conflicts: 0, failures: 0, transitions: [], planned: null, cursor: null };
const event = () =>
  newAuditEvent({ action: "fleet.sweep", actor: { kind: "system", id: "scheduler" }, resource: { type: "sweep", id: "x" }, outcome: "success" });

describe.each(testDatabases())("run lock ($name)", (tdb) => {
  let opts: TestDatabaseOptions;
  let db1: Database;
  let db2: Database;
  beforeEach(async () => {
    opts = tdb.options("fleet-sweep");
    db1 = await createOrm({ ...opts, entities, migrations });
    db2 = await createOrm({ ...opts, entities, migrations });
  });
  afterEach(async () => {
    await db1.close();
    await db2.close();
    await opts.cleanup();
  });

  it("migrations are up to date", async () => {
    await assertMigrationsUpToDate(db1);
  });

  it("admits one run at a time across replicas and names the running one", async () => {
    const a = createSweepStore({ db: db1, now: () => new Date(), owner: "replica-a", leaseMs: 60_000 });
    const b = createSweepStore({ db: db2, now: () => new Date(), owner: "replica-b", leaseMs: 60_000 });
    await Promise.all([a.ensureLockRow(), b.ensureLockRow(), a.ensureLockRow()]);

    // Racing replicas need PostgreSQL: SQLite is one process per file, and two connections of one
    // process waiting on each other's lock block its single thread.
    const results = tdb.name === "postgresql" ? await Promise.all([a.begin(begin), b.begin(begin)]) : [await a.begin(begin), await b.begin(begin)];
    const winners = results.filter((r) => r.ok);
    const losers = results.filter((r) => !r.ok);
    expect(winners).toHaveLength(1);
    expect(losers).toHaveLength(1);
    const run = (winners[0] as { run: { id: string } }).run;
    expect(losers[0]).toMatchObject({ ok: false, runningId: run.id });

    expect(await (results[0]!.ok ? a : b).progress(run.id, { ...empty, examined: 10, cursor: "d-10" })).toBe(true);
    let held: boolean | undefined;
    const finished = await (results[0]!.ok ? a : b).finish(run.id, (lockHeld) => {
      held = lockHeld;
      return { final: { ...empty, examined: 20, status: "SUCCEEDED", error: null }, event: event() };
    });
    expect(held).toBe(true);
    expect(finished).toMatchObject({ status: "SUCCEEDED", examined: 20 });

    // Released: the other replica may run now.
    const next = await b.begin(begin);
    expect(next.ok).toBe(true);
  });

  it("takes over from a replica whose lease lapsed and marks its run FAILED", async () => {
    const dead = createSweepStore({ db: db1, now: () => new Date(), owner: "dead", leaseMs: 200 });
    const alive = createSweepStore({ db: db2, now: () => new Date(), owner: "alive", leaseMs: 60_000 });
    await dead.ensureLockRow();
    const abandoned = await dead.begin(begin);
    if (!abandoned.ok) throw new Error("first run should start");
    expect((await alive.begin(begin)).ok).toBe(false);

    await new Promise((r) => setTimeout(r, 300));
    const taken = await alive.begin(begin);
    expect(taken.ok).toBe(true);
    expect(await alive.get(abandoned.run.id)).toMatchObject({ status: "FAILED", error: expect.stringContaining("abandoned") });
    // The dead replica, back from a pause, finds it lost the lock and must stop.
    expect(await dead.progress(abandoned.run.id, empty)).toBe(false);
    expect(await dead.renew(abandoned.run.id)).toBe(false);
    // Finishing is told so, and leaves the new holder's lock alone.
    let held: boolean | undefined;
    await dead.finish(abandoned.run.id, (lockHeld) => {
      held = lockHeld;
      return { final: { ...empty, status: "FAILED", error: "lost the run lock to another replica" }, event: event() };
    });
    expect(held).toBe(false);
    expect((await alive.begin(begin)).ok).toBe(false);
  });
});
