/**
 * The heartbeat bench's measurements of CPU and event-loop stalls (heartbeat.ts): a server child's
 * stalls and cores over a window, the machine's busy cores, and latency percentiles.
 */
import { readFileSync } from "node:fs";
import { cpus } from "node:os";

/** An event-loop stall of a server child (see `serve`). */
export interface Stall {
  at: number;
  ms: number;
  onCpuMs: number;
  waitingMs: number;
}

/** A server's stalls during a window, and the CPU it used (cores, every thread). */
export interface ServerStalls {
  maxMs: number;
  /** When the longest stall began, in seconds into the window, and the garbage collection inside it. */
  longestAtS: number;
  longestGcMs: number;
  /** How many stalls over 50 ms began in each second of the window: spread out, or bunched (a phase's aftermath). */
  over50BySecond: number[];
  over50: number;
  /** The stalls over 50 ms added up, and how much of that time the main thread ran or waited for a CPU. */
  over50Ms: number;
  over50OnCpuMs: number;
  over50WaitingMs: number;
  /** Garbage collection inside those stalls, and how many of the collections were full mark-compacts. */
  over50GcMs: number;
  over50MajorGcs: number;
  cores: number;
  /** The main thread alone (the event loop), in cores. */
  mainThreadCores: number;
}

/** The first and last of samples ([wall-clock time, …]) taken between two times, or null with fewer than two. */
export function windowEnds<T extends readonly [number, ...number[]]>(samples: readonly T[], from: number, to: number): [T, T] | null {
  const inside = samples.filter(([at]) => at >= from && at <= to);
  return inside.length < 2 ? null : [inside[0]!, inside[inside.length - 1]!];
}

/** Cores used between two wall-clock times, from [time, cumulative CPU ms] samples a second apart. */
export function coresBetween(samples: ReadonlyArray<[number, number]>, from: number, to: number): number {
  const ends = windowEnds(samples, from, to);
  return ends ? (ends[1][1] - ends[0][1]) / (ends[1][0] - ends[0][0]) : NaN;
}

/** The machine's busy cores between two wall-clock times, from /proc/stat samples (see `machineCpu`). */
export function machineCoresBetween(samples: ReadonlyArray<[number, number, number]>, from: number, to: number): number {
  const ends = windowEnds(samples, from, to);
  return ends ? ((ends[1][1] - ends[0][1]) / (ends[1][2] - ends[0][2])) * cpus().length : NaN;
}

/** Samples the machine's CPU once a second: [time, busy jiffies, total jiffies] (Linux). */
export function machineCpu(): { samples: Array<[number, number, number]>; stop(): void } {
  const samples: Array<[number, number, number]> = [];
  const read = () => {
    try {
      const fields = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
      const total = fields.reduce((n, x) => n + x, 0);
      // idle and iowait are the idle columns (4th and 5th).
      samples.push([Date.now(), total - fields[3]! - fields[4]!, total]);
    } catch {
      // Not Linux: no machine figure.
    }
  };
  read();
  const timer = setInterval(read, 1000);
  return { samples, stop: () => clearInterval(timer) };
}

/** A server's stalls in the interval phase, for the table: how long, how many, and where the time went. */
export function describeStalls(st: ServerStalls, machineCores: number): string {
  const pct = (ms: number) => `${Math.round((100 * ms) / Math.max(1, st.over50Ms))} %`;
  const where =
    st.over50 > 0
      ? `; in them the main thread ran ${pct(st.over50OnCpuMs)} and waited for a CPU ${pct(st.over50WaitingMs)} of the time, garbage collection ${pct(st.over50GcMs)} (${st.over50MajorGcs} mark-compact)`
      : "";
  const longest = st.maxMs >= 50 ? ` (${st.longestAtS.toFixed(1)} s into the window, GC ${st.longestGcMs.toFixed(0)} ms)` : "";
  const bySecond = st.over50 > 0 ? `, by second of the window [${st.over50BySecond.join(" ")}]` : "";
  return `server's longest stall ${st.maxMs.toFixed(0)} ms${longest}, ${st.over50} over 50 ms${bySecond}${where}; server ${st.cores.toFixed(2)} cores (main thread ${st.mainThreadCores.toFixed(2)}), machine ${machineCores.toFixed(2)} cores busy`;
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The p50 and p99 of `values` (sorted in place). */
export function percentiles(values: number[]): { p50: number; p99: number } {
  values.sort((a, b) => a - b);
  const pct = (p: number) => values[Math.min(values.length - 1, Math.floor(values.length * p))] ?? NaN;
  return { p50: pct(0.5), p99: pct(0.99) };
}
