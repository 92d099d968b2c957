/** Page-size rules for the list RPCs (AIP-158 style: 0 means "server default"). */
import { refuse, type Verdict } from "./verdict.js";

/** A list RPC's page-size policy. */
export interface PageSizeLimits {
  /** Used when the caller asks for 0 (unset). */
  readonly default: number;
  /** The largest page a caller may ask for. */
  readonly max: number;
}

/**
 * Resolves a requested page size: 0 → the default; a negative, fractional or over-max request is
 * refused with INVALID_ARGUMENT (rather than silently clamped, so a caller never mistakes a
 * short page for the end of the list).
 */
export function clampPageSize(requested: number, limits: PageSizeLimits): Verdict<{ pageSize: number }> {
  if (requested === 0) return { ok: true, pageSize: limits.default };
  if (!Number.isInteger(requested) || requested < 0 || requested > limits.max) {
    return refuse(
      "INVALID_ARGUMENT",
      `page_size must be an integer between 0 and ${limits.max} (got ${requested})`,
      "page_size",
    );
  }
  return { ok: true, pageSize: requested };
}
