import { afterEach, describe, expect, it } from "vitest";
import { rawQuery, testDatabases, type TestDatabaseOptions } from "@lcp/testing/db";
import { assertMigrationsUpToDate, createOrm, DatabaseConfigError, defaultSchemaFor, driverForUrl, isConnectionError, type Database } from "../src/index.js";
import { entities, migrations } from "./fixtures/outbox-storage/schema.js";
import { openFixture } from "./helpers.js";

describe.each(testDatabases())("createOrm ($name)", (tdb) => {
  const open: Array<{ db: Database; opts: TestDatabaseOptions }> = [];
  afterEach(async () => {
    for (const { db, opts } of open.splice(0)) {
      await db.close();
      await opts.cleanup();
    }
  });
  async function fresh(app = "outbox-app") {
    const opts = tdb.options(app);
    const db = await openFixture(opts);
    open.push({ db, opts });
    return { db, opts };
  }

  it("applies the committed migrations and leaves no drift between entities and tables", async () => {
    const { db, opts } = await fresh();
    expect(db.driver).toBe(tdb.name);
    await assertMigrationsUpToDate(db);
    const applied = await rawQuery<{ name: string }>(opts, "select name from mikro_orm_migrations");
    expect(applied.map((r) => r.name)).toEqual(migrations[tdb.name].map((m) => m.name));
  });

  it("reopening an existing database applies nothing twice", async () => {
    const { db, opts } = await fresh();
    await db.close();
    const again = await createOrm({ ...opts, entities, migrations });
    open.push({ db: again, opts: { ...opts, cleanup: async () => undefined } });
    const applied = await rawQuery(opts, "select name from mikro_orm_migrations");
    expect(applied).toHaveLength(migrations[tdb.name].length);
  });

  it("an entity without its migration is reported as drift", async () => {
    const opts = tdb.options("outbox-app");
    const db = await createOrm({ ...opts, entities, migrations: { sqlite: [], postgresql: [] } });
    open.push({ db, opts });
    await expect(assertMigrationsUpToDate(db)).rejects.toThrow(/outbox_event[\s\S]*migrations\.ts create/);
  });

  if (tdb.name === "postgresql") {
    it("keeps each app in its own schema, migrations table included", async () => {
      const { opts } = await fresh();
      const tables = await rawQuery<{ table_schema: string; table_name: string }>(
        opts,
        "select table_schema, table_name from information_schema.tables where table_schema = $1 order by table_name",
        [opts.schema],
      );
      expect(tables.map((t) => t.table_name)).toEqual(["mikro_orm_migrations", "outbox_event"]);
    });

    it("two replicas starting at once migrate once", async () => {
      const opts = tdb.options("outbox-app");
      const [a, b] = await Promise.all([openFixture(opts), openFixture(opts)]);
      open.push({ db: a, opts: { ...opts, cleanup: async () => undefined } }, { db: b, opts });
      expect(await rawQuery(opts, "select name from mikro_orm_migrations")).toHaveLength(migrations.postgresql.length);
    });
  } else {
    it("uses WAL and a busy timeout so concurrent writers wait", async () => {
      const { db } = await fresh();
      const em = db.em();
      const [mode] = await em.execute<Array<{ journal_mode: string }>>("pragma journal_mode");
      const [timeout] = await em.execute<Array<{ timeout: number }>>("pragma busy_timeout");
      const [fk] = await em.execute<Array<{ foreign_keys: number }>>("pragma foreign_keys");
      expect(mode?.journal_mode).toBe("wal");
      expect(timeout?.timeout).toBeGreaterThanOrEqual(5000);
      expect(fk?.foreign_keys).toBe(1);
    });
  }
});

describe("DATABASE_URL", () => {
  it("rejects an unsupported scheme with an error naming DATABASE_URL", async () => {
    expect(() => driverForUrl("mysql://root@localhost/db")).toThrow(DatabaseConfigError);
    await expect(
      createOrm({ app: "x", databaseUrl: "mysql://root@localhost/db", dataDir: "/tmp/never", entities, migrations }),
    ).rejects.toThrow(/DATABASE_URL has unsupported scheme "mysql:"/);
    expect(() => driverForUrl("not a url")).toThrow(/DATABASE_URL/);
  });

  it("an unreachable PostgreSQL fails createOrm with an error recognised as a connection error", async () => {
    const err = await createOrm({ app: "x", databaseUrl: "postgres://root@127.0.0.1:1/test", dataDir: "/tmp/never", entities, migrations }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(isConnectionError(err)).toBe(true);
  });

  it("selects SQLite when unset and PostgreSQL for postgres:// and postgresql://", () => {
    expect(driverForUrl(undefined)).toBe("sqlite");
    expect(driverForUrl("")).toBe("sqlite");
    expect(driverForUrl("postgres://u@h/db")).toBe("postgresql");
    expect(driverForUrl("postgresql://u@h/db")).toBe("postgresql");
    expect(defaultSchemaFor("signing-keys")).toBe("signing_keys");
  });
});
