/** Millisecond constants and a human formatter for durations in messages. */

/** One second in milliseconds. */
export const SECOND_MS = 1_000;
/** One minute in milliseconds. */
export const MINUTE_MS = 60 * SECOND_MS;
/** One hour in milliseconds. */
export const HOUR_MS = 60 * MINUTE_MS;
/** One day in milliseconds. */
export const DAY_MS = 24 * HOUR_MS;

/**
 * Formats a duration for a human message using the largest unit that divides it exactly
 * (`14 d`, `5 min`, `90 s`, `1500 ms`), so ranges in error messages read as an operator wrote them.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  const units: Array<[number, string]> = [
    [DAY_MS, "d"],
    [HOUR_MS, "h"],
    [MINUTE_MS, "min"],
    [SECOND_MS, "s"],
  ];
  for (const [size, name] of units) {
    if (ms !== 0 && ms % size === 0) return `${ms / size} ${name}`;
  }
  return `${ms} ms`;
}
