/**
 * What one run of a reconcile page's SQL reports, whichever driver ran it, and the page's range
 * bound both drivers' statements share.
 */
import type { ReconcilePageInput, TalliedTransitions } from "./reconcile-page.js";

/** A changed row of the page as the database reported it. */
export interface MovedRow {
  id: string;
  state: string;
  lockReason: string | null;
  to: number;
  /** Written by the set-based path (false: lost its compare-and-set, or not its kind). */
  won: boolean;
  /** Whether a template covered it (false: the one-deployment path's). */
  bulk: boolean;
  /** Its directive as written (LOCK), for the push to a connected box. */
  directive: { id: string; type: string; payload: string } | null;
}

/** What one run of the page's SQL reported. */
export interface PageOutcome {
  examined: number;
  next: string;
  moved: MovedRow[];
  /** Bulk transitions applied and counted in SQL, not listed in `moved`. */
  tallied: TalliedTransitions[];
}

/** The page's upper bound as a condition on `alias.id` (nothing when the range runs to the end), with its parameters. */
export function rangeBound(input: ReconcilePageInput): { sql: (alias: string) => string; params: unknown[] } {
  const upTo = input.upToDeploymentId ?? "";
  return upTo === "" ? { sql: () => "", params: [] } : { sql: (alias) => ` and ${alias}.id <= ?`, params: [upTo] };
}
