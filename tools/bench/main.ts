/**
 * `npm run bench [-- <name> ...] [--markdown[=<file>]]`: runs the project's benchmarks and prints
 * one table of figures, each beside a baseline measured in the same run, with the ratio and the
 * machine's core count. Names: signing, audit, licensing, heartbeat, sweep, last-seen, console, rest,
 * offline
 * (all when none given). `--markdown` also writes the figures to `docs/benchmarks.md` (or `<file>`), one
 * table per benchmark, keeping the tables of benchmarks not run.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { currentMachine, mergeBenchmarks, today } from "./markdown.js";
import { type BenchArea, type BenchResult, printResults } from "./result.js";

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
  console: async () => (await import("./console.js")).benchConsole,
  rest: async () => (await import("./rest.js")).benchRest,
  offline: async () => (await import("./offline.js")).benchOffline,
};

// Benchmarks that measure the one driver DATABASE_URL chooses keep a table per driver, so a run
// on one does not drop the other's figures from docs/benchmarks.md.
const ONE_DRIVER = new Set(["sweep", "console"]);

function areaOf(name: string): string {
  if (!ONE_DRIVER.has(name)) return name;
  return `${name} (${process.env.DATABASE_URL ? "postgresql" : "sqlite"})`;
}

/** Every table's name, in the benchmarks' order. */
const AREA_ORDER = Object.keys(BENCHES).flatMap((n) => (ONE_DRIVER.has(n) ? [`${n} (postgresql)`, `${n} (sqlite)`] : [n]));

const DEFAULT_MARKDOWN = fileURLToPath(new URL("../../docs/benchmarks.md", import.meta.url));

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const asked = args.filter((a) => !a.startsWith("-"));
  const flags = args.filter((a) => a.startsWith("-"));
  const unknown = [...asked.filter((a) => !(a in BENCHES)), ...flags.filter((f) => f !== "--markdown" && !f.startsWith("--markdown="))];
  if (unknown.length > 0) {
    console.error(`unknown benchmark(s) or option(s): ${unknown.join(", ")}; known: ${Object.keys(BENCHES).join(", ")}, --markdown[=<file>]`);
    process.exit(2);
  }
  const markdownFlag = flags.find((f) => f.startsWith("--markdown"));
  const markdownFile = markdownFlag === undefined ? undefined : markdownFlag.includes("=") ? markdownFlag.slice(markdownFlag.indexOf("=") + 1) : DEFAULT_MARKDOWN;
  const names = asked.length > 0 ? asked : Object.keys(BENCHES);
  const machine = currentMachine();
  const areas: BenchArea[] = [];
  const failed: string[] = [];
  for (const name of names) {
    console.error(`== ${name}`);
    try {
      const bench = await BENCHES[name]!();
      areas.push({ area: areaOf(name), machine, date: today(), results: await bench() });
    } catch (err) {
      failed.push(name);
      console.error(`benchmark ${name} failed:`, err);
    }
  }
  console.log(`\n${machine.cores} cores, node ${machine.node}, DATABASE_URL ${process.env.DATABASE_URL ? "set" : "unset"}`);
  printResults(areas.flatMap((a) => a.results));
  if (markdownFile) {
    // A failed benchmark leaves its earlier table in place rather than an empty one.
    const existing = existsSync(markdownFile) ? readFileSync(markdownFile, "utf8") : undefined;
    writeFileSync(markdownFile, mergeBenchmarks(existing, areas, AREA_ORDER));
    console.error(`wrote ${markdownFile} (${areas.map((a) => a.area).join(", ") || "no area"} refreshed)`);
  }
  if (failed.length > 0) {
    console.error(`failed: ${failed.join(", ")}`);
    process.exit(1);
  }
}

await main();
