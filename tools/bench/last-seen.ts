/**
 * `npm run bench -- last-seen`: one flush of the heartbeat's coalescing last-seen writer on SQLite
 * (licensing's real writer over a migrated licensing database, 10,000 bound boxes), beside a bare
 * set-based UPDATE of the same rows' `last_seen_at` measured in the same run on a connection set
 * up as the apps' are. On SQLite every statement of the flush runs on licensing's event loop, so
 * its length is time no beat is answered.
 *
 * Two orders of marks: the boxes' beat order when they beat at random phases, as a real fleet does
 * (each box on its own clock), and key order, as the heartbeat bench's load happens to beat (box i
 * at offset i/N of the interval, boxes provisioned in order). A warm-up round, not counted, then
 * `BENCH_LAST_SEEN_ROUNDS` (5) rounds, medians. PostgreSQL is not measured: its statements do not
 * run on licensing's thread.
 */
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createLastSeenWriter, openLicensingDatabase } from "@lcp/licensing/testing";
import { SQLITE_CONNECTION_PRAGMAS } from "@lcp/persistence";
import { createLogger } from "@lcp/rpc";
import { rawQuery, testDatabases } from "@lcp/testing/db";
import { median, printResults, type BenchResult } from "./result.js";

const BOXES = Number(process.env.BENCH_LAST_SEEN_BOXES ?? 10_000);
const ROUNDS = Number(process.env.BENCH_LAST_SEEN_ROUNDS ?? 5);

interface Connection {
  pragma(sql: string): unknown;
  prepare(sql: string): { run(...params: unknown[]): unknown };
  close(): void;
}

/** Runs the benchmark (see the module comment). */
export async function benchLastSeen(): Promise<BenchResult[]> {
  const options = testDatabases()
    .find((t) => t.name === "sqlite")!
    .options("licensing");
  const db = await openLicensingDatabase(options);
  const Sqlite = createRequire(import.meta.url)("better-sqlite3") as new (file: string) => Connection;
  const bare = new Sqlite(join(options.dataDir, "licensing.sqlite"));
  try {
    for (const pragma of SQLITE_CONNECTION_PRAGMAS) bare.pragma(pragma);
    const t0 = Date.UTC(2026, 10, 27, 12);
    const ids = await seed(options, BOXES, t0);
    const writer = createLastSeenWriter({ db, log: createLogger("bench", "silent"), flushEveryMs: 3_600_000 });
    let clock = t0;

    // Each measurement starts from an empty WAL and pays for the pages it writes, and for the
    // checkpoints those trigger (SQLite checkpoints on commit once the WAL passes 1,000 pages),
    // not for what the one before it left behind.
    const resetWal = () => bare.pragma("wal_checkpoint(TRUNCATE)");
    const flushMs = async (order: readonly string[]) => {
      resetWal();
      clock += 1_000;
      for (const id of order) writer.seen(id, clock);
      const t = performance.now();
      await writer.flush();
      return performance.now() - t;
    };
    const bareMs = () => {
      resetWal();
      clock += 1_000;
      const t = performance.now();
      bare.prepare("update deployment set last_seen_at = ? where activated_at is not null").run(clock);
      return performance.now() - t;
    };

    const rounds: Array<{ bare: number; random: number; keyOrder: number }> = [];
    for (let round = 0; round <= ROUNDS; round++) {
      const measured = { bare: bareMs(), random: await flushMs(shuffled(ids)), keyOrder: await flushMs(ids) };
      // Round 0 warms the code and both connections' caches and is not counted.
      if (round > 0) rounds.push(measured);
      console.error(
        `  ${round > 0 ? `round ${round}` : "warm-up (not counted)"}: flush ${measured.random.toFixed(1)} ms (random phases), ` +
          `${measured.keyOrder.toFixed(1)} ms (key order), bare UPDATE ${measured.bare.toFixed(1)} ms`,
      );
    }
    const base = median(rounds.map((r) => r.bare));
    const n = `${BOXES.toLocaleString("en-US")} boxes, SQLite; median of ${ROUNDS}; ms, lower is better`;
    const baseline = `bare set-based UPDATE of the same ${BOXES.toLocaleString("en-US")} rows' last_seen_at`;
    const random = median(rounds.map((r) => r.random));
    const keyOrder = median(rounds.map((r) => r.keyOrder));
    return [
      { name: `last-seen flush, boxes beating at random phases (${n})`, value: random, unit: "ms", baseline, baselineValue: base, ratio: base / random },
      { name: `last-seen flush, boxes beating in key order (${n})`, value: keyOrder, unit: "ms", baseline, baselineValue: base, ratio: base / keyOrder },
    ];
  } finally {
    bare.close();
    await db.close();
    await options.cleanup();
  }
}

/** Seeds `count` bound, ACTIVE deployments with UUIDv7-shaped ids in provisioning (key) order; returns the ids. */
async function seed(options: Parameters<typeof rawQuery>[0], count: number, t0: number): Promise<string[]> {
  const cols =
    "id, name, customer, kind, subscription_status, license_expires_at, activated_at, fingerprint_hash, last_seen_at, state, state_changed_at, version, created_at, updated_at";
  await rawQuery(
    options,
    `insert into deployment (${cols})
     with recursive s(g) as (select 1 union all select g + 1 from s where g < ${count})
     select '00000000-0000-7000-8000-' || substr('000000000000' || g, -12), 'box-' || g, 'bench', 'ON_PREM', 'VALID', ?, ?,
            '${"a".repeat(64)}', ?, 'ACTIVE', ?, 1, ?, ?
     from s`,
    [t0 + 365 * 86_400_000, t0, t0, t0, t0, t0],
  );
  return Array.from({ length: count }, (_, i) => `00000000-0000-7000-8000-${String(i + 1).padStart(12, "0")}`);
}

/** A copy of `items` in random order (Fisher–Yates). */
function shuffled<T>(items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

// Run directly (`node --conditions=source --import tsx tools/bench/last-seen.ts`) as well as from main.ts.
const entry = process.argv[1] ? fileURLToPath(import.meta.url) === process.argv[1] : false;
if (entry) printResults(await benchLastSeen());
