/**
 * The SQLite statement thread (`createSqliteStatementThread`): a second writer on the app's file,
 * off the event loop (the heartbeat's last-seen flush runs there). It writes what it is given, in
 * order, each statement committed on its own; a failing statement is reported with SQLite's code
 * and leaves the ones before it written and none after; it waits its turn behind a transaction of
 * the app's own connection instead of failing; a closed thread refuses work.
 */
import { rawQuery, testDatabases, type TestDatabaseOptions } from "@lcp/testing/db";
import { afterEach, describe, expect, it } from "vitest";
import { createSqliteStatementThread, SqliteThreadError, type Database, type SqliteStatementThread } from "../src/index.js";
import { fixturePerTest } from "./helpers.js";

describe("SQLite statement thread", () => {
  const tdb = testDatabases().find((t) => t.name === "sqlite")!;
  let opts: TestDatabaseOptions;
  let db: Database;
  fixturePerTest(tdb, (o, d) => {
    opts = o;
    db = d;
  });
  let thread: SqliteStatementThread | undefined;
  afterEach(async () => {
    await thread?.close();
    thread = undefined;
  });

  async function open(): Promise<SqliteStatementThread> {
    await rawQuery(opts, "create table t (k integer primary key, v text not null)");
    expect(db.sqliteFile).toMatch(/outbox-app\.sqlite$/);
    return (thread = createSqliteStatementThread(db.sqliteFile!));
  }
  const rows = () => rawQuery<{ k: number; v: string }>(opts, "select k, v from t order by k");

  it("runs the statements in order on its own connection and answers their change counts", async () => {
    const t = await open();
    const changes = await t.run([
      { sql: "insert into t (k, v) values (?, ?), (?, ?)", params: [1, "a", 2, "b"] },
      { sql: "update t set v = ? where k >= ?", params: ["c", 2] },
      { sql: "update t set v = ? where k > ?", params: ["never", 9] },
    ]);
    expect(changes).toEqual([2, 1, 0]);
    expect(await rows()).toEqual([
      { k: 1, v: "a" },
      { k: 2, v: "c" },
    ]);
  });

  it("stops at a failing statement with SQLite's code: the statements before it stay written, none after runs", async () => {
    const t = await open();
    const run = t.run([
      { sql: "insert into t (k, v) values (?, ?)", params: [1, "a"] },
      { sql: "insert into t (k, v) values (?, ?)", params: [2, null] },
      { sql: "insert into t (k, v) values (?, ?)", params: [3, "c"] },
    ]);
    await expect(run).rejects.toBeInstanceOf(SqliteThreadError);
    await expect(run).rejects.toMatchObject({ code: "SQLITE_CONSTRAINT_NOTNULL", message: expect.stringMatching(/NOT NULL/) });
    expect(await rows()).toEqual([{ k: 1, v: "a" }]);
    // The thread carries on.
    expect(await t.run([{ sql: "insert into t (k, v) values (?, ?)", params: [3, "c"] }])).toEqual([1]);
  });

  it("waits for a transaction of the app's own connection to commit, then writes", async () => {
    const t = await open();
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let inside!: () => void;
    const writing = new Promise<void>((resolve) => (inside = resolve));
    const appTx = db.transactional(async (em) => {
      await em.getConnection().execute("insert into t (k, v) values (1, 'app')", [], "run", em.getTransactionContext());
      inside();
      await held;
    });
    await writing;
    const threadWrite = t.run([{ sql: "insert into t (k, v) values (?, ?)", params: [2, "thread"] }]);
    let settled = false;
    void threadWrite.finally(() => (settled = true));
    // The app's transaction holds the write lock: the thread waits (busy_timeout), nothing is committed.
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(settled).toBe(false);
    expect(await rows()).toEqual([]);
    release();
    await appTx;
    expect(await threadWrite).toEqual([1]);
    expect(await rows()).toEqual([
      { k: 1, v: "app" },
      { k: 2, v: "thread" },
    ]);
  });

  it("refuses work once closed", async () => {
    const t = await open();
    expect(await t.run([{ sql: "insert into t (k, v) values (?, ?)", params: [1, "a"] }])).toEqual([1]);
    await t.close();
    await expect(t.run([{ sql: "insert into t (k, v) values (?, ?)", params: [2, "b"] }])).rejects.toThrow(/closed/);
    expect(await rows()).toEqual([{ k: 1, v: "a" }]);
  });
});
