/** Timers, injectable so tests drive them with the same fake clock they inject as `clock`. */

/** An opaque timer handle. */
export type TimerHandle = unknown;

/** The two timer functions the SDK uses. */
export interface Scheduler {
  setTimeout(callback: () => void, delayMs: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

// Node clamps larger delays to 1 ms (and warns), which would turn a 30-day wait into a busy loop.
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The real timers of the host. */
export const realScheduler: Scheduler = {
  setTimeout: (callback, delayMs) => setTimeout(callback, Math.min(Math.max(0, delayMs), MAX_TIMER_MS)),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};
