/**
 * Scheduled runs: every `intervalMs` this replica tries a sweep; when another run (of any
 * replica) holds the lock it skips that round — the fleet is being swept anyway.
 */
import type { Logger } from "@lcp/rpc";
import type { SweepRunner } from "./runner.js";

/** Options of {@link startScheduler}. */
export interface SchedulerOptions {
  runner: SweepRunner;
  intervalMs: number;
  pageSize: number;
  log: Logger;
}

/** A running scheduler. */
export interface Scheduler {
  /** Stops scheduling; an in-flight run is the runner's to stop. */
  stop(): void;
}

/** Starts the schedule; the first run is one interval after start, so a fresh replica does not stampede. */
export function startScheduler(options: SchedulerOptions): Scheduler {
  const { runner, intervalMs, pageSize, log } = options;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  async function tick(): Promise<void> {
    // A run of this replica still going (a huge fleet, a slow licensing): skip, do not queue.
    if (runner.busy()) {
      log.debug("scheduled sweep skipped: a run of this replica is in progress");
      return;
    }
    try {
      const outcome = await runner.run({
        trigger: "SCHEDULED",
        dryRun: false,
        pageSize,
        requester: { kind: "system", id: "scheduler" },
      });
      if (!outcome.ok) log.debug({ runningId: outcome.runningId }, "scheduled sweep skipped: another run holds the lock");
    } catch (err) {
      log.error({ err }, "scheduled sweep could not run");
    }
  }

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      void tick().finally(schedule);
    }, intervalMs);
    timer.unref();
  };
  schedule();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
