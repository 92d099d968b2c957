/**
 * Every ORM path sends its values as bound parameters, never as SQL text: a value holding a NUL
 * byte, quotes, `?`, `$1` or backslashes reaches the database as the value it is. On SQLite it is
 * stored and read back unchanged; PostgreSQL (whose text type cannot hold NUL) refuses it as a
 * value (22021), never as a broken wire message (08P01, which was taken for an outage). Ordinary
 * values — dates, lists for `in`, JSON — keep working through the same paths, and the error of
 * a failed statement names the statement with placeholders, never the values.
 */
import { Writable } from "node:stream";
import { rawQuery, testDatabases, type TestDatabaseOptions } from "@lcp/testing/db";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { isConnectionError, OutboxEvent, type Database } from "../src/index.js";
import { fixturePerTest } from "./helpers.js";

const NUL = "name\u0000with a NUL";
const SQL_SPECIALS = `it's "quoted" ? $1 \\ --; drop table outbox_event`;

describe.each(testDatabases())("ORM paths bind values ($name)", (tdb) => {
  let db: Database;
  let opts: TestDatabaseOptions;
  fixturePerTest(tdb, (o, d) => {
    opts = o;
    db = d;
  });

  const row = (id: string, action: string, occurredAt = new Date("2030-01-02T03:04:05.678Z")) => ({
    id,
    action,
    occurredAt,
    payload: JSON.stringify({ action }),
  });

  /** Expects PostgreSQL's value error for a NUL in text, raised as a bound value would raise it. */
  async function refusedAsValue(promise: Promise<unknown>) {
    const err = (await promise.then(
      () => undefined,
      (e: unknown) => e,
    )) as { code?: string; message?: string } | undefined;
    expect(err, "PostgreSQL stores no NUL in text").toBeDefined();
    expect(err!.code).toBe("22021");
    expect(isConnectionError(err)).toBe(false);
    expect(err!.message).not.toContain("\u0000");
  }

  it("values with SQL metacharacters round-trip through flush, find, QueryBuilder and execute", async () => {
    await db.transactional(async (em) => void em.create(OutboxEvent, row("00000000-0000-7000-8000-000000000001", SQL_SPECIALS)));
    const found = await db.em().findOneOrFail(OutboxEvent, { action: SQL_SPECIALS });
    expect(found.payload).toBe(JSON.stringify({ action: SQL_SPECIALS }));
    const viaQb = await db.em().createQueryBuilder(OutboxEvent).select("id").where({ action: SQL_SPECIALS }).execute("all");
    expect(viaQb).toHaveLength(1);
    const [echo] = await db.em().execute<{ v: string }[]>("select ? as v", [SQL_SPECIALS]);
    expect(echo!.v).toBe(SQL_SPECIALS);
    await db.em().nativeUpdate(OutboxEvent, { action: SQL_SPECIALS }, { lastError: SQL_SPECIALS });
    const stored = await rawQuery<{ last_error: string }>(opts, "select last_error from outbox_event");
    expect(stored).toEqual([{ last_error: SQL_SPECIALS }]);
  });

  it("dates, `in` lists and raw statements bind as the platform would have written them", async () => {
    const at = new Date("2031-05-06T07:08:09.123Z");
    await db.transactional(async (em) => {
      em.create(OutboxEvent, row("00000000-0000-7000-8000-000000000002", "a", at));
      em.create(OutboxEvent, row("00000000-0000-7000-8000-000000000003", "b", at));
      em.create(OutboxEvent, row("00000000-0000-7000-8000-000000000004", "c"));
    });
    const byDate = await db.em().find(OutboxEvent, { occurredAt: at }, { orderBy: { action: "asc" } });
    expect(byDate.map((e) => e.action)).toEqual(["a", "b"]);
    expect(byDate[0]!.occurredAt.getTime()).toBe(at.getTime());
    const byList = await db.em().find(OutboxEvent, { action: { $in: ["a", "c"] } }, { orderBy: { action: "asc" } });
    expect(byList.map((e) => e.action)).toEqual(["a", "c"]);
    const counted = await db.em().execute<{ n: number | string }[]>("select count(*) as n from outbox_event where action in (?) and occurred_at = ?", [["a", "b", "c"], at]);
    expect(Number(counted[0]!.n)).toBe(2);
  });

  if (tdb.name === "sqlite") {
    it("a NUL reaching storage is stored and read back unchanged on every path", async () => {
      await db.transactional(async (em) => void em.create(OutboxEvent, row("00000000-0000-7000-8000-000000000005", NUL)));
      const found = await db.em().findOneOrFail(OutboxEvent, { action: NUL });
      expect(found.action).toBe(NUL);
      await db.em().nativeUpdate(OutboxEvent, { action: NUL }, { lastError: NUL });
      const [echo] = await db.em().execute<{ v: string }[]>("select ? as v", [NUL]);
      expect(echo!.v).toBe(NUL);
      const stored = await rawQuery<{ action: string; last_error: string }>(opts, "select action, last_error from outbox_event");
      expect(stored).toEqual([{ action: NUL, last_error: NUL }]);
    });
  } else {
    it("a NUL reaching storage is refused as a value, never as a broken wire message, on every path", async () => {
      await refusedAsValue(db.transactional(async (em) => void em.create(OutboxEvent, row("00000000-0000-7000-8000-000000000006", NUL))));
      await refusedAsValue(db.em().find(OutboxEvent, { action: NUL }));
      await refusedAsValue(db.em().createQueryBuilder(OutboxEvent).select("id").where({ action: NUL }).execute("all"));
      await refusedAsValue(db.em().nativeUpdate(OutboxEvent, { action: "x" }, { lastError: NUL }));
      await refusedAsValue(db.em().execute("select ? as v", [NUL]));
      // The pool is not poisoned: the next statement runs.
      expect(await db.em().count(OutboxEvent, {})).toBe(0);
    });
  }

  it("a failed statement's error shows placeholders, not the values", async () => {
    const secret = "s3cr3t-customer-name-in-a-statement";
    await db.transactional(async (em) => void em.create(OutboxEvent, row("00000000-0000-7000-8000-000000000007", secret)));
    // The same id again: a unique violation, raised with the statement that carried the value.
    const err = (await db
      .transactional(async (em) => void em.create(OutboxEvent, row("00000000-0000-7000-8000-000000000007", secret)))
      .catch((e: unknown) => e)) as Error & Record<string, unknown>;
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toMatch(/insert into/);
    // Logged as every app logs a handler's error (pino's err serializer), the line holds no value.
    const lines: string[] = [];
    const log = pino({ level: "error" }, new Writable({ write: (chunk: Buffer, _enc, done) => (lines.push(chunk.toString("utf8")), done()) }));
    log.error({ err }, "unhandled error in handler");
    expect(lines.join("")).toMatch(/insert into/);
    for (const text of [lines.join(""), err.stack ?? ""]) {
      expect(text).not.toContain(secret);
      expect(text).not.toContain("00000000-0000-7000-8000-000000000007");
    }
  });
});
