/** The committed migrations produce exactly the schema the entities describe, on both drivers. */
import { assertMigrationsUpToDate, createOrm } from "@lcp/persistence";
import { testDatabases } from "@lcp/testing/db";
import { describe, it } from "vitest";
import { entities, migrations } from "../src/storage/schema.js";

describe.each(testDatabases())("licensing migrations ($name)", (tdb) => {
  it("are up to date with the entities", async () => {
    const opts = tdb.options("licensing");
    const db = await createOrm({ ...opts, entities, migrations });
    try {
      await assertMigrationsUpToDate(db, entities);
    } finally {
      await db.close();
      await opts.cleanup();
    }
  });
});
