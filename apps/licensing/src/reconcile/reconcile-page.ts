/**
 * The licensing side of the fleet sweep (docs/design.md §9): re-derive one keyset page of
 * deployments at the sweep's `now` and apply every transition — set-based, in the database. The
 * state is derived in SQL in the scan that reads the page ({@link derivedCodeSql}, a transcription
 * of the domain's `deriveState` proven equal to it by a property test), so an unchanged row never
 * leaves the database; every changed row whose transition needs no signature is written by one
 * set-based UPDATE with compare-and-set, and its audit event and directive are INSERTed from the
 * rows that UPDATE wrote, from per-kind templates the domain decided ({@link createTransitionTemplates}).
 * The audit events of one kind go into the outbox as ONE row, a run the relay expands into the
 * same events, ids and order (@lcp/persistence `EventRun`): a page's audit write is a few rows,
 * not one ~370-byte row per transition. For a counts-only caller (a real sweep) the page returns
 * a tally per kind instead of a row per transition, except where it must act on a row (a
 * directive to push, a conflict, a kind for the one-deployment path).
 *
 * - PostgreSQL: one statement per page (data-modifying CTEs): read and derive the page, UPDATE …
 *   FROM the changed rows with compare-and-set on `version` — and on `last_seen_at` when the
 *   derived state depends on it, since the heartbeat's batched flush moves it WITHOUT a version
 *   bump — RETURNING the winners, and INSERT … SELECT their outbox events and directives. A row a
 *   concurrent writer (an operator, a beat, another sweep) changed after the statement's snapshot
 *   is re-checked under its row lock, fails the compare-and-set and counts as a conflict: the
 *   next sweep judges it on fresh facts.
 * - SQLite (no DML in CTEs): a few statements in one transaction. SQLite has one writer and a read
 *   snapshot that went stale cannot be upgraded to a write (SQLITE_BUSY_SNAPSHOT, and the page is
 *   retried), so the transaction is serialisable: what it read is what it writes over. Its
 *   multi-row writes are `OR FAIL` (`page-sqlite.ts`).
 *
 * Transitions whose directives carry a new lease (→ ACTIVE or → SUSPENDED of a bound box: the
 * REACTIVATE/SUSPEND + RENEW_LEASE pair) need a signature from signing-keys; those rare rows go
 * through the one-deployment path (`applyDeploymentChange`), which signs before its transaction
 * and re-derives with the domain itself on the row it compares-and-sets against. A dry run runs
 * the same derivation and reports every changed row without writing.
 */
import { deriveState, directivesFor, transitionOf, type DerivedState, type Transition } from "@lcp/domain";
import { isSerializationFailure } from "@lcp/persistence";
import type { Directive } from "@lcp/proto/licensing/v1/types_pb";
import { DomainError } from "@lcp/rpc";
import { applyDeploymentChange, publishSafely, type CoreDeps } from "../core/deployment-change.js";
import { directiveToProto } from "../mapping.js";
import type { DirectiveRow } from "../storage/entities.js";
import { loadSettings, storedStateOf } from "../storage/repository.js";
import { stateOfCode } from "./derivation-sql.js";
import type { AppliedTransition, MovedRow, PageOutcome, ReconcileHooks, ReconcilePageInput, ReconcilePageResult } from "./page-types.js";
import { runPagePostgres } from "./page-postgres.js";
import { runPageSqlite } from "./page-sqlite.js";
import { createTransitionTemplates, transitionAudit } from "./transition-templates.js";

/**
 * Reconcile page sizes: 0 → 1,000, at most 50,000 (proto ReconcileRequest.page_size). A page is
 * one statement (PostgreSQL) or one short transaction (SQLite); 50,000 rows keep it well under a
 * second while making the per-page round trips (RPC, progress report) a small share of a sweep.
 */
export const RECONCILE_PAGE = { default: 1_000, max: 50_000 } as const;

/** How often a page whose write lost a database race (deadlock, busy snapshot) is re-run. */
const MAX_ATTEMPTS = 5;


function byId(a: AppliedTransition, b: AppliedTransition): number {
  return a.deploymentId < b.deploymentId ? -1 : a.deploymentId > b.deploymentId ? 1 : 0;
}

/** A moved row's transition (from the stored columns, to the SQL-derived code). */
function transitionOfMoved(row: MovedRow): Transition {
  return { from: { state: row.state, lockReason: row.lockReason } as DerivedState, to: stateOfCode(row.to) as DerivedState };
}

/** Reconciles one keyset page (see the module comment). */
export async function reconcilePage(deps: CoreDeps, input: ReconcilePageInput, hooks: ReconcileHooks = {}): Promise<ReconcilePageResult> {
  const settings = input.settings ?? (await loadSettings(deps.db.em(), input.at));
  // PostgreSQL's one statement needs every kind's template up front; SQLite renders only the kinds
  // its page found, after reading it.
  const templates = input.dryRun || deps.db.driver !== "postgresql" ? [] : createTransitionTemplates(input);
  let page: PageOutcome;
  for (let attempt = 1; ; attempt++) {
    try {
      page = await deps.db.transactional((tx) =>
        deps.db.driver === "postgresql" ? runPagePostgres(tx, input, settings, templates) : runPageSqlite(tx, input, settings, hooks),
      );
      break;
    } catch (err) {
      if (isSerializationFailure(err) && attempt < MAX_ATTEMPTS) {
        deps.log.debug({ attempt, after: input.afterDeploymentId }, "reconcile page lost a database race, retrying");
        continue;
      }
      throw err;
    }
  }

  if (input.dryRun) {
    const planned = page.moved.map((row) => ({ deploymentId: row.id, transition: transitionOfMoved(row) })).sort(byId);
    return { examined: page.examined, transitions: planned, tallied: [], conflicts: 0, nextAfterDeploymentId: page.next };
  }

  const applied: AppliedTransition[] = [];
  const publish: Array<{ deploymentId: string; directives: Directive[] }> = [];
  let conflicts = 0;
  for (const row of page.moved) {
    if (!row.bulk) continue;
    if (!row.won) {
      conflicts += 1;
      continue;
    }
    applied.push({ deploymentId: row.id, transition: transitionOfMoved(row) });
    if (row.directive) {
      const written = { ...row.directive, deploymentId: row.id, createdAt: input.at, ackedAt: null } as DirectiveRow;
      publish.push({ deploymentId: row.id, directives: [directiveToProto(written)] });
    }
  }

  // Rare: the kinds without a template, one at a time through the path every command uses. It
  // re-derives on the row it compares-and-sets against; finding nothing left to change means a
  // concurrent writer got there first (a conflict).
  for (const row of page.moved) {
    if (row.bulk) continue;
    try {
      const result = await applyDeploymentChange(deps, {
        deploymentId: row.id,
        call: input.call,
        action: "reconcile",
        at: input.at,
        decide: (loaded) => {
          const transition = transitionOf(storedStateOf(loaded.deployment), deriveState(loaded.facts, loaded.now.getTime(), loaded.settings));
          return {
            facts: loaded.facts,
            skipIfUnchanged: true,
            // The transition's own event, carrying the sweep id (the core then writes no second one).
            audit: transition ? [transitionAudit(row.id, transition, directivesFor(transition), input.sweepId)] : [],
          };
        },
      });
      if (result.transition) applied.push({ deploymentId: row.id, transition: result.transition });
      else conflicts += 1;
    } catch (err) {
      // Deleted meanwhile, or it kept changing under us: the next sweep judges it again.
      if (err instanceof DomainError && (err.code === "CONFLICT" || err.code === "NOT_FOUND")) {
        conflicts += 1;
        continue;
      }
      throw err;
    }
  }

  for (const p of publish) await publishSafely(deps, p.deploymentId, p.directives);
  applied.sort(byId);
  return { examined: page.examined, transitions: applied, tallied: page.tallied, conflicts, nextAfterDeploymentId: page.next };
}
