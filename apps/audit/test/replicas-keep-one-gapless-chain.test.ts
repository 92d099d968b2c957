import { testDatabases, type TestDatabaseOptions } from "@lcp/testing/db";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { AuditApp } from "../src/app.js";
import { auditEvent, createAuditTestEnv, type AuditTestEnv } from "./support.js";

let env: AuditTestEnv;
beforeAll(async () => {
  env = await createAuditTestEnv();
});
afterAll(() => env.close());

// Two audit instances on ONE database (the same PostgreSQL schema, or the same SQLite file),
// three producers appending concurrently to both, with redeliveries mixed in.
describe.each(testDatabases())("two audit replicas on one database ($name)", (tdb) => {
  let dbOpts: TestDatabaseOptions;
  let a: AuditApp;
  let b: AuditApp;
  beforeEach(async () => {
    dbOpts = tdb.options("audit");
    // Started together: their migrations must serialise too.
    [a, b] = await Promise.all([env.start(dbOpts), env.start(dbOpts)]);
  });
  afterEach(async () => {
    await Promise.all([a.close(), b.close()]);
    await dbOpts.cleanup();
  });

  it("chains every event exactly once, gaplessly, and the chain verifies", async () => {
    const producers = ["licensing", "signing-keys", "fleet-sweep"];
    const batchesPerProducer = 12;
    const batchSize = 25;
    const sent = new Map<string, string>();
    const work: Promise<unknown>[] = [];
    for (const producer of producers) {
      const clients = [await env.serviceClient(a, producer), await env.serviceClient(b, producer)];
      const batches = Array.from({ length: batchesPerProducer }, (_, n) =>
        Array.from({ length: batchSize }, (_, i) => {
          const e = auditEvent({ action: "license.issue", resource: { type: "license", id: `${producer}-${n}-${i}` } });
          sent.set(e.id, producer);
          return e;
        }),
      );
      work.push(
        (async () => {
          for (let n = 0; n < batches.length; n++) {
            // Alternate replicas, and redeliver each batch to the other replica concurrently,
            // as a relay whose first response was lost would.
            await Promise.all([clients[n % 2]!.append({ events: batches[n]! }), clients[(n + 1) % 2]!.append({ events: batches[n]! })]);
          }
        })(),
      );
    }
    await Promise.all(work);

    const total = producers.length * batchesPerProducer * batchSize;
    const admin = env.adminClient(b, ["auditor"]);
    expect(await admin.verifyChain({})).toMatchObject({ ok: true, checked: BigInt(total), headSeq: BigInt(total) });

    const seen = new Map<string, bigint>();
    let pageToken = "";
    do {
      const page = await env.adminClient(a, ["auditor"]).listEvents({ pageSize: 500, pageToken });
      for (const e of page.events) {
        expect(seen.has(e.id)).toBe(false);
        seen.set(e.id, e.seq);
        expect(e.producer).toBe(sent.get(e.id));
      }
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(seen.size).toBe(total);
    expect([...seen.values()].map(Number).sort((x, y) => x - y)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
  });
});
