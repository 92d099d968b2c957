/**
 * The calling process's main thread's time on a CPU and waiting for one, from Linux
 * `/proc/…/schedstat`: the event loop alone, where `process.cpuUsage()` adds every thread (V8's GC
 * helpers, a SQLite worker). Null where /proc is not there.
 */
import { readFileSync } from "node:fs";

export function mainThreadSchedstat(): { onCpuNs: number; waitingNs: number } | null {
  try {
    const [onCpu, waiting] = readFileSync(`/proc/self/task/${process.pid}/schedstat`, "utf8").split(" ");
    return { onCpuNs: Number(onCpu), waitingNs: Number(waiting) };
  } catch {
    return null;
  }
}
