/**
 * `npm run bench [-- <name> ...]`: runs the project's benchmarks and prints one table of figures,
 * each beside a baseline measured in the same run, with the ratio and the machine's core count.
 * Names: signing, audit, licensing, heartbeat, sweep, last-seen (all when none given).
 */
import { cpus } from "node:os";
import { type BenchResult, printResults } from "./result.js";

type Bench = () => Promise<BenchResult[]>;

// Each benchmark lives in its own module and is loaded only when asked for, so one that needs
// PostgreSQL or a long set-up does not slow the others.
const BENCHES: Record<string, () => Promise<Bench>> = {
  signing: async () => (await import("./signing.js")).benchSigning,
  audit: async () => (await import("./audit.js")).benchAudit,
  licensing: async () => (await import("./licensing.js")).benchLicensing,
  heartbeat: async () => (await import("./heartbeat.js")).benchHeartbeat,
  sweep: async () => (await import("./sweep.js")).benchSweep,
  "last-seen": async () => (await import("./last-seen.js")).benchLastSeen,
};

async function main(): Promise<void> {
  const asked = process.argv.slice(2).filter((a) => !a.startsWith("-"));
  const unknown = asked.filter((a) => !(a in BENCHES));
  if (unknown.length > 0) {
    console.error(`unknown benchmark(s): ${unknown.join(", ")}; known: ${Object.keys(BENCHES).join(", ")}`);
    process.exit(2);
  }
  const names = asked.length > 0 ? asked : Object.keys(BENCHES);
  const results: BenchResult[] = [];
  const failed: string[] = [];
  for (const name of names) {
    console.error(`== ${name}`);
    try {
      const bench = await BENCHES[name]!();
      results.push(...(await bench()));
    } catch (err) {
      failed.push(name);
      console.error(`benchmark ${name} failed:`, err);
    }
  }
  console.log(`\n${cpus().length} cores, node ${process.version}, DATABASE_URL ${process.env.DATABASE_URL ? "set" : "unset"}`);
  printResults(results);
  if (failed.length > 0) {
    console.error(`failed: ${failed.join(", ")}`);
    process.exit(1);
  }
}

await main();
