/**
 * `isConnectionError` (what every app passes its servers as `transientError`, answered
 * Unavailable so clients retry) holds only for a database that cannot be reached or dropped the
 * connection. A statement the server refuses — a protocol violation from a NUL in the statement
 * text, a missing table, a value whose text reads like a connection message — is a bug, answered
 * Internal: retrying it would fail the same way for ever.
 */
import { testDatabases } from "@lcp/testing/db";
import { describe, expect, it } from "vitest";
import { isConnectionError, type Database } from "../src/index.js";
import { fixturePerTest } from "./helpers.js";

const failure = (promise: Promise<unknown>) => promise.then(() => expect.fail("the statement should fail"), (e: unknown) => e as Error & { code?: string });

describe.each(testDatabases())("only a lost connection is an outage ($name)", (tdb) => {
  let db: Database;
  fixturePerTest(tdb, (_opts, d) => {
    db = d;
  });

  it("a refused statement whose value reads like a connection message is not one", async () => {
    const err = await failure(db.em().execute("select * from no_such_table where name = ?", ["Connection terminated unexpectedly"]));
    expect(isConnectionError(err)).toBe(false);
  });

  it("a NUL in the statement text itself breaks the statement, not the connection", async () => {
    const err = await failure(db.em().execute("select 'a\u0000b' as v"));
    if (tdb.name === "postgresql") expect(err.code).toBe("08P01");
    expect(isConnectionError(err)).toBe(false);
  });

  if (tdb.name === "postgresql") {
    it("a value PostgreSQL quotes back in its message does not make the refusal an outage", async () => {
      const err = await failure(db.em().execute("select cast(? as integer) as n", ["Connection terminated"]));
      expect(err.code).toBe("22P02");
      expect(isConnectionError(err)).toBe(false);
    });

    it("the server ending the session is an outage", async () => {
      const err = await failure(db.em().execute("select pg_terminate_backend(pg_backend_pid())"));
      expect(isConnectionError(err)).toBe(true);
    });
  }
});
