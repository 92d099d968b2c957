/**
 * A reconcile page's types: what it is asked, what it reports, and what one run of its SQL
 * reports whichever driver ran it; with the page's range bound both drivers' statements share.
 */
import type { Settings, Transition } from "@lcp/domain";
import type { CallContext } from "../core/audit.js";

/** One page to reconcile. */
export interface ReconcilePageInput {
  /** Derive at this time (already checked against max_clock_skew). */
  at: Date;
  /** Keyset cursor: only ids greater than this; from the start when empty. */
  afterDeploymentId: string;
  /** The range's upper bound, inclusive (a SplitFleet boundary); to the end when empty or unset. */
  upToDeploymentId?: string | undefined;
  pageSize: number;
  dryRun: boolean;
  /** The sweep run, recorded in each transition's audit event. */
  sweepId: string;
  call: CallContext;
  /**
   * Only counts are wanted (a real sweep's report): the transitions the database applied by itself
   * with no directive to push are counted per kind in SQL ({@link ReconcilePageResult.tallied})
   * instead of each coming back as a row. Ignored by a dry run, which lists what it plans.
   */
  countsOnly?: boolean;
  /** The settings to derive with, when the caller already read them (else read here). */
  settings?: Settings | undefined;
}

/** One transition applied (or, in a dry run, planned). */
export interface AppliedTransition {
  deploymentId: string;
  transition: Transition;
}

/** How many transitions of one kind a page applied. */
export interface TalliedTransitions {
  transition: Transition;
  count: number;
}

/** What a page did. */
export interface ReconcilePageResult {
  examined: number;
  /** In deployment id order. */
  transitions: AppliedTransition[];
  /** Applied transitions not in `transitions` (only with `countsOnly`): how many of each kind. */
  tallied: TalliedTransitions[];
  conflicts: number;
  /** Empty when this was the last page. */
  nextAfterDeploymentId: string;
}

/**
 * Test-only seam: runs between the page's read and its first write, where one exists — SQLite's
 * transaction reads, then writes; PostgreSQL's single statement has no such gap (a race there is
 * staged with a row lock instead).
 */
export interface ReconcileHooks {
  afterRead?(): Promise<void> | void;
}

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
