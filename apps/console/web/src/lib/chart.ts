/**
 * The arithmetic of the console's charts, apart from drawing them: a count axis that ends on a
 * round number, bar lengths, and shares in words. Pure, so it is tested without a browser.
 */

/** A count axis: from 0 to `max` in steps of `step`, with its tick values. */
export interface CountScale {
  readonly max: number;
  readonly step: number;
  readonly ticks: readonly number[];
}

/**
 * The axis for counts up to `largest`: at most `maxTicks` steps of 1, 2 or 5 × 10ⁿ (never a
 * fraction: counts are whole), ending on the first step at or above `largest`. An empty
 * chart still gets an axis from 0 to 1.
 */
export function countScale(largest: number, maxTicks = 4): CountScale {
  const top = Number.isFinite(largest) && largest > 0 ? Math.ceil(largest) : 1;
  const rough = top / Math.max(1, Math.floor(maxTicks));
  let step = 1;
  for (let magnitude = 1; step < rough; magnitude *= 10) {
    step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= rough) ?? 10 * magnitude;
  }
  const max = Math.ceil(top / step) * step;
  const ticks: number[] = [];
  for (let t = 0; t <= max; t += step) ticks.push(t);
  return { max, step, ticks };
}

/**
 * The length of a bar for `value` on an axis ending at `max` drawn over `length` pixels. A value
 * above zero is never drawn thinner than `minimum`, so one deployment among thousands still
 * shows; zero (and anything not a positive number) draws nothing.
 */
export function barLength(value: number, max: number, length: number, minimum = 2): number {
  if (!(value > 0) || !(max > 0) || !(length > 0)) return 0;
  return Math.min(length, Math.max(minimum, (value / max) * length));
}

/** `value` as a share of `total` in words: "45%", "<1%" for a small non-zero share, "0%". */
export function shareText(value: number, total: number): string {
  if (!(total > 0) || !(value > 0)) return "0%";
  const pct = (value / total) * 100;
  if (pct < 1) return "<1%";
  if (pct > 99 && value < total) return ">99%";
  return `${Math.round(pct)}%`;
}

/** A whole number with the operator's digit grouping ("12,345"). */
export function formatCount(n: number | bigint): string {
  return new Intl.NumberFormat().format(n);
}
