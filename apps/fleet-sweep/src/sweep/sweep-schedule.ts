/**
 * The scheduler follows licensing's sweep_interval setting (screen licensing/settings): it asks
 * licensing (`ReconcileService.GetSweepSchedule`) at start and then every `pollMs`, and hands a
 * changed interval to the scheduler, which re-arms at once — no restart.
 *
 * Polled rather than carried in Reconcile replies: replies arrive only when a run happens, so a
 * shortened interval (1 h → 1 min) would wait out the old hour before it was seen; the poll sees
 * it within `pollMs` whatever the interval.
 *
 * SWEEP_INTERVAL is the interval until licensing has answered with a stored setting. When
 * licensing cannot be reached the scheduler keeps the last interval it knew and goes on running
 * (each run then fails and is stored FAILED, as before), so its rhythm does not depend on
 * licensing being up.
 */
import { SWEEP_INTERVAL_RANGE_MS } from "@lcp/domain";
import type { Logger } from "@lcp/rpc";
import type { Scheduler } from "./scheduler.js";

/** Options of {@link watchSweepSchedule}. */
export interface SweepScheduleWatchOptions {
  /** Licensing's stored sweep_interval in ms, or null when it stores none yet. Rejects when licensing cannot answer. */
  read(signal: AbortSignal): Promise<number | null>;
  /** The interval while licensing stores no setting (SWEEP_INTERVAL). */
  defaultMs: number;
  /** How often licensing is asked. */
  pollMs: number;
  scheduler: Pick<Scheduler, "intervalMs" | "setIntervalMs">;
  log: Logger;
}

/** A running watch. */
export interface SweepScheduleWatch {
  /** Stops asking; a read in flight is aborted. */
  stop(): void;
}

/** Starts asking licensing for the schedule: once now, then every `pollMs` after each answer. */
export function watchSweepSchedule(options: SweepScheduleWatchOptions): SweepScheduleWatch {
  const { read, defaultMs, pollMs, scheduler, log } = options;
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let reachable = true;

  async function poll(): Promise<void> {
    let ms: number;
    try {
      ms = (await read(abort.signal)) ?? defaultMs;
      if (!reachable) log.info("licensing answers again; the sweep schedule follows its setting");
      reachable = true;
    } catch (err) {
      if (abort.signal.aborted) return;
      // Once per outage: the next polls fail the same way until licensing is back.
      if (reachable) log.warn({ err, intervalMs: scheduler.intervalMs() }, "could not read the sweep schedule from licensing; keeping the current interval");
      reachable = false;
      return;
    }
    // Licensing validates the setting on write; a value outside the range here is a bug or a
    // hand-edited row, and 0 would sweep in a tight loop.
    const { min, max } = SWEEP_INTERVAL_RANGE_MS;
    if (!Number.isFinite(ms) || ms < min || ms > max) {
      log.warn({ intervalMs: ms }, "licensing answered a sweep interval out of range; keeping the current one");
      return;
    }
    if (ms !== scheduler.intervalMs()) {
      log.info({ from: scheduler.intervalMs(), to: ms }, "sweep interval changed");
      scheduler.setIntervalMs(ms);
    }
  }

  const next = () => {
    if (abort.signal.aborted) return;
    void poll().finally(() => {
      if (abort.signal.aborted) return;
      timer = setTimeout(next, pollMs);
      timer.unref();
    });
  };
  next();
  return {
    stop() {
      abort.abort();
      clearTimeout(timer);
    },
  };
}
