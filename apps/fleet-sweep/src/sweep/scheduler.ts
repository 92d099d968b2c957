/**
 * Scheduled runs: every `intervalMs` this replica tries a sweep; when another run (of any
 * replica) holds the lock it skips that round — the fleet is being swept anyway. The interval can
 * change while it runs (licensing's sweep_interval setting, see sweep-schedule.ts).
 */
import type { Logger } from "@lcp/rpc";
import type { SweepRunner } from "./runner.js";

/** Options of {@link startScheduler}. */
export interface SchedulerOptions {
  runner: SweepRunner;
  /** The interval to start with (SWEEP_INTERVAL until licensing's setting is known). */
  intervalMs: number;
  pageSize: number;
  log: Logger;
}

/** A running scheduler. */
export interface Scheduler {
  /** The interval in force. */
  intervalMs(): number;
  /**
   * Follows a new interval at once, without waiting out the old one: the next run is due the new
   * interval after the current wait began (at once when that is past). While a run is in
   * progress the wait after it uses the new interval.
   */
  setIntervalMs(ms: number): void;
  /** Stops scheduling; an in-flight run is the runner's to stop. */
  stop(): void;
}

/** Starts the schedule; the first run is one interval after start, so a fresh replica does not stampede. */
export function startScheduler(options: SchedulerOptions): Scheduler {
  const { runner, pageSize, log } = options;
  let intervalMs = options.intervalMs;
  let timer: NodeJS.Timeout | undefined;
  let waitStartedAt = 0;
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

  const arm = (delayMs: number) => {
    timer = setTimeout(() => {
      timer = undefined;
      void tick().finally(schedule);
    }, delayMs);
    timer.unref();
  };
  const schedule = () => {
    if (stopped) return;
    waitStartedAt = performance.now();
    arm(intervalMs);
  };
  schedule();
  return {
    intervalMs: () => intervalMs,
    setIntervalMs(ms) {
      if (ms === intervalMs) return;
      intervalMs = ms;
      // No timer: a run is in progress, and `schedule` after it reads the new interval.
      if (stopped || timer === undefined) return;
      clearTimeout(timer);
      arm(Math.max(0, waitStartedAt + ms - performance.now()));
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
