/**
 * Human durations ("90s", "15m", "1h", "7d", "500ms") for the CLI and app configuration, so every
 * place that reads a duration from a person accepts the same spelling and rejects the same typos.
 */

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

// One integer and one unit: "1h30m" or "1.5h" are refused rather than guessed at, because a
// misread grace window or token lifetime is a security setting silently gone wrong.
const DURATION_RE = /^(\d+)(ms|s|m|h|d)$/;

/** Thrown when a duration string is not `<integer><ms|s|m|h|d>`. */
export class DurationError extends Error {
  override name = "DurationError";
}

/**
 * Parses a duration such as `"90s"`, `"15m"`, `"1h"`, `"7d"` or `"500ms"` into milliseconds.
 * @throws DurationError naming the bad input and the accepted form.
 */
export function parseDuration(value: string): number {
  const match = DURATION_RE.exec(value.trim());
  if (!match) {
    throw new DurationError(
      `invalid duration ${JSON.stringify(value)}: expected an integer followed by ms, s, m, h or d (e.g. "90s", "15m", "1h", "7d")`,
    );
  }
  const amount = Number(match[1]);
  const ms = amount * UNIT_MS[match[2] as keyof typeof UNIT_MS];
  if (!Number.isSafeInteger(ms)) {
    throw new DurationError(`invalid duration ${JSON.stringify(value)}: too large`);
  }
  return ms;
}
