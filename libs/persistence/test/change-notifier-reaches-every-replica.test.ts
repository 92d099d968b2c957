import { afterEach, describe, expect, it } from "vitest";
import { testDatabases, type TestDatabaseOptions } from "@lcp/testing/db";
import { createChangeNotifier, type ChangeNotifier, type Database } from "../src/index.js";
import { fixturePerTest, openFixture } from "./helpers.js";

async function until(cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe.each(testDatabases())("change notifier ($name)", (tdb) => {
  let opts: TestDatabaseOptions;
  let db: Database;
  const closers: Array<() => Promise<void>> = [];
  fixturePerTest(tdb, (o, d) => {
    opts = o;
    db = d;
  });
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c();
  });

  it("a payload published by one replica reaches subscribers of every replica on the channel", async () => {
    const a = await createChangeNotifier(db, "deployment_changed");
    closers.push(() => a.close());
    let b: ChangeNotifier = a;
    if (tdb.name === "postgresql") {
      const other = await openFixture({ ...opts, cleanup: async () => undefined });
      closers.push(() => other.close());
      b = await createChangeNotifier(other, "deployment_changed");
      closers.push(() => b.close());
    }
    const heard: string[] = [];
    const unsubscribe = b.subscribe((p) => heard.push(p));
    await a.publish("dep-1");
    await until(() => heard.includes("dep-1"));
    unsubscribe();
    await a.publish("dep-2");
    await new Promise((r) => setTimeout(r, 50));
    expect(heard).toEqual(["dep-1"]);
  });
});
