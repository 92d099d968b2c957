/**
 * Durations as operators type them: an amount and a unit, turned into milliseconds (and back,
 * in the largest unit that holds the value exactly, so 300000 ms reads as 5 min).
 */
import { DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS } from "@lcp/domain";

/** The units a duration input offers. */
export const DURATION_UNITS = ["ms", "s", "min", "h", "d"] as const;

/** A unit of a duration input. */
export type DurationUnit = (typeof DURATION_UNITS)[number];

/** Milliseconds per unit. */
export const UNIT_MS: Readonly<Record<DurationUnit, number>> = { ms: 1, s: SECOND_MS, min: MINUTE_MS, h: HOUR_MS, d: DAY_MS };

/** Unit names in words, for the unit select. */
export const UNIT_LABELS: Readonly<Record<DurationUnit, string>> = {
  ms: "milliseconds",
  s: "seconds",
  min: "minutes",
  h: "hours",
  d: "days",
};

/** What a duration input holds: the typed amount (kept as text while editing) and its unit. */
export interface DurationValue {
  readonly amount: string;
  readonly unit: DurationUnit;
}

/** The input value for a duration in milliseconds, in the largest unit that holds it exactly. */
export function durationValueFromMs(ms: number): DurationValue {
  for (const unit of ["d", "h", "min", "s"] as const) {
    if (ms !== 0 && ms % UNIT_MS[unit] === 0) return { amount: String(ms / UNIT_MS[unit]), unit };
  }
  return ms === 0 ? { amount: "0", unit: "s" } : { amount: String(ms), unit: "ms" };
}

/**
 * The milliseconds an input value means, or null when the amount is not a non-negative number
 * (decimals allowed: 1.5 h). Whole milliseconds only.
 */
export function durationValueToMs(value: DurationValue): number | null {
  const text = value.amount.trim();
  if (!/^\d{1,12}(\.\d{1,6})?$/.test(text)) return null;
  const ms = Math.round(Number(text) * UNIT_MS[value.unit]);
  return Number.isSafeInteger(ms) ? ms : null;
}

/**
 * An elapsed time for reading ("3 min 20 s", "2 d 4 h"): at most two units, largest first.
 */
export function formatElapsed(ms: number): string {
  if (!Number.isFinite(ms)) return "—";
  const sign = ms < 0 ? "-" : "";
  let rest = Math.abs(Math.round(ms));
  if (rest < SECOND_MS) return `${sign}${rest} ms`;
  const parts: string[] = [];
  for (const unit of ["d", "h", "min", "s"] as const) {
    const size = UNIT_MS[unit];
    const n = Math.floor(rest / size);
    if (n > 0 || parts.length > 0) {
      if (n > 0) parts.push(`${n} ${unit}`);
      rest -= n * size;
    }
    if (parts.length === 2) break;
  }
  return sign + parts.join(" ");
}
