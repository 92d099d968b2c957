/**
 * What every benchmark reports: a figure next to a baseline measured in the same run on the
 * same machine, so the ratio holds on a noisy 2-core box where absolute numbers do not.
 */
export interface BenchResult {
  /** What was measured, e.g. "Sign RPC over mTLS, 64 callers". */
  name: string;
  value: number;
  /** e.g. "ops/s", "ms", "KB/conn". */
  unit: string;
  /** What the figure is compared with, e.g. "raw crypto.sign Ed25519". */
  baseline: string;
  baselineValue: number;
  /** value / baselineValue for rates; baselineValue / value where lower is better (say so in name). */
  ratio: number;
  /** The goal, e.g. "≥ 0.5", shown beside the ratio. */
  goal?: string;
  /** What the run saw around the figure (load, stalls), printed after the name; not part of the figure. */
  detail?: string;
}

/** The machine a run measured on, stated beside its figures. */
export interface BenchMachine {
  cores: number;
  /** The CPU model as the OS names it. */
  cpu: string;
  /** `process.version`. */
  node: string;
}

/** One benchmark's figures from one run: what `docs/benchmarks.md` keeps per area. */
export interface BenchArea {
  /** The benchmark's name on the command line, e.g. "sweep". */
  area: string;
  machine: BenchMachine;
  /** When it was measured, `YYYY-MM-DD`. */
  date: string;
  results: BenchResult[];
}

/** Prints results as one aligned table. */
export function printResults(results: readonly BenchResult[]): void {
  const rows = results.map((r) => [
    r.detail ? `${r.name}; ${r.detail}` : r.name,
    `${formatFigure(r.value)} ${r.unit}`,
    r.baseline,
    `${formatFigure(r.baselineValue)} ${r.unit}`,
    r.ratio.toFixed(2),
    r.goal ?? "",
  ]);
  const head = ["benchmark", "value", "baseline", "baseline value", "ratio", "goal"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ");
  console.log(line(head));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const row of rows) console.log(line(row));
}

/** A figure as the tables show it: whole and grouped from 100 up, two decimals below. */
export function formatFigure(n: number): string {
  return n >= 100 ? Math.round(n).toLocaleString("en-US") : n.toFixed(2);
}

/** Runs `fn` repeatedly with `concurrency` callers for `durationMs` and returns ops/s. */
export async function measureRate(fn: () => Promise<unknown>, concurrency: number, durationMs: number): Promise<number> {
  let done = 0;
  const deadline = performance.now() + durationMs;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        await fn();
        done++;
      }
    }),
  );
  return done / ((performance.now() - start) / 1000);
}

/** The median of interleaved rounds (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
