/**
 * `npm run bench -- last-seen`: one flush of the heartbeat's coalescing last-seen writer
 * (licensing's real writer over a migrated licensing database, 10,000 bound boxes), beside a bare
 * set-based UPDATE of the same rows' `last_seen_at` measured in the same run on a connection held
 * as licensing holds its own; on SQLite, and on PostgreSQL too when DATABASE_URL is set. Each
 * figure also gives the CPU time the flush took on this (licensing's) main thread, the event loop,
 * time no beat is answered: the sort and the encoding (the statements run on SQLite's statement
 * thread, or in PostgreSQL).
 *
 * Two orders of marks: the boxes' beat order when they beat at random phases, as a real fleet does
 * (each box on its own clock), and key order, as the heartbeat bench's load happens to beat (box i
 * at offset i/N of the interval, boxes provisioned in order). On SQLite each measurement starts
 * from an empty WAL, so it pays for the pages it writes and the checkpoints those trigger. A
 * warm-up round, not counted, then `BENCH_LAST_SEEN_ROUNDS` (5) rounds, medians.
 */
import { fileURLToPath } from "node:url";
import { createLastSeenWriter, openLicensingDatabase } from "@lcp/licensing/testing";
import { createLogger } from "@lcp/rpc";
import { testDatabases, type TestDatabase } from "@lcp/testing/db";
import { fleetId, heldConnection, seedFleet } from "./fleet-db.js";
import { mainThreadSchedstat } from "./main-thread.js";
import { median, printResults, type BenchResult } from "./result.js";

const BOXES = Number(process.env.BENCH_LAST_SEEN_BOXES ?? 10_000);
const ROUNDS = Number(process.env.BENCH_LAST_SEEN_ROUNDS ?? 5);

/** Runs the benchmark on every configured driver (see the module comment). */
export async function benchLastSeen(): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  for (const tdb of testDatabases()) results.push(...(await benchOn(tdb)));
  return results;
}

interface Timing {
  ms: number;
  cpuMs: number;
}

async function benchOn(tdb: TestDatabase): Promise<BenchResult[]> {
  const options = tdb.options("licensing");
  const pg = Boolean(options.databaseUrl);
  const db = await openLicensingDatabase(options);
  const bare = await heldConnection(options);
  // Its SQLite statement thread starts on the first flush; closed in `finally`.
  const writer = createLastSeenWriter({ db, log: createLogger("bench", "silent"), flushEveryMs: 3_600_000 });
  try {
    const t0 = new Date(Date.UTC(2026, 10, 27, 12));
    await seedFleet(options, BOXES, t0, { every: 10, ms: 600_000 });
    const ids = Array.from({ length: BOXES }, (_, i) => fleetId(i + 1));
    let clock = t0.getTime();

    const timed = async (work: () => Promise<void>): Promise<Timing> => {
      bare.resetWal();
      const cpu = mainThreadSchedstat();
      const t = performance.now();
      await work();
      const ms = performance.now() - t;
      const after = mainThreadSchedstat();
      return { ms, cpuMs: cpu && after ? (after.onCpuNs - cpu.onCpuNs) / 1e6 : Number.NaN };
    };
    const flush = (order: readonly string[]) => {
      clock += 1_000;
      for (const id of order) writer.seen(id, clock);
      return timed(() => writer.flush());
    };
    const bareUpdate = () => {
      clock += 1_000;
      const at = pg ? new Date(clock).toISOString() : clock;
      return timed(() => bare.run(`update deployment set last_seen_at = ${pg ? "$1" : "?"} where activated_at is not null`, [at]));
    };

    const rounds: Array<{ bare: Timing; random: Timing; keyOrder: Timing }> = [];
    for (let round = 0; round <= ROUNDS; round++) {
      const measured = { bare: await bareUpdate(), random: await flush(shuffled(ids)), keyOrder: await flush(ids) };
      // Round 0 warms the code and both connections' caches and is not counted.
      if (round > 0) rounds.push(measured);
      const show = (t: Timing) => `${t.ms.toFixed(1)} ms (CPU here ${t.cpuMs.toFixed(1)} ms)`;
      console.error(
        `  ${tdb.name} ${round > 0 ? `round ${round}` : "warm-up (not counted)"}: flush ${show(measured.random)} at random phases, ` +
          `${show(measured.keyOrder)} in key order; bare UPDATE ${show(measured.bare)}`,
      );
    }
    const base = median(rounds.map((r) => r.bare.ms));
    const baseline = `bare set-based UPDATE of the same ${BOXES.toLocaleString("en-US")} rows' last_seen_at`;
    const figure = (label: string, pick: (r: (typeof rounds)[number]) => Timing): BenchResult => {
      const ms = median(rounds.map((r) => pick(r).ms));
      const cpuMs = median(rounds.map((r) => pick(r).cpuMs));
      return {
        name:
          `last-seen flush, boxes beating ${label} (${BOXES.toLocaleString("en-US")} boxes, ${pg ? "PostgreSQL" : "SQLite"}; ` +
          `CPU on licensing's thread ${cpuMs.toFixed(1)} ms; median of ${ROUNDS}; ms, lower is better)`,
        value: ms,
        unit: "ms",
        baseline,
        baselineValue: base,
        ratio: base / ms,
      };
    };
    return [figure("at random phases", (r) => r.random), figure("in key order", (r) => r.keyOrder)];
  } finally {
    await writer.close();
    await bare.close();
    await db.close();
    await options.cleanup();
  }
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
