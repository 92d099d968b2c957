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
 *   multi-row writes are `OR FAIL` ({@link SQLITE_NO_STATEMENT_JOURNAL}).
 *
 * Transitions whose directives carry a new lease (→ ACTIVE or → SUSPENDED of a bound box: the
 * REACTIVATE/SUSPEND + RENEW_LEASE pair) need a signature from signing-keys; those rare rows go
 * through the one-deployment path (`applyDeploymentChange`), which signs before its transaction
 * and re-derives with the domain itself on the row it compares-and-sets against. A dry run runs
 * the same derivation and reports every changed row without writing.
 */
import { deriveState, directivesFor, transitionOf, type DerivedState, type Settings, type Transition } from "@lcp/domain";
import { EVENT_RUN_PREFIX, encodeEventRun, isSerializationFailure, runUuid } from "@lcp/persistence";
import type { Directive } from "@lcp/proto/licensing/v1/types_pb";
import { DomainError } from "@lcp/rpc";
import type { EntityManager } from "@mikro-orm/knex";
import type { CallContext } from "../core/audit.js";
import { applyDeploymentChange, publishSafely, type CoreDeps } from "../core/deployment-change.js";
import { directiveToProto } from "../mapping.js";
import type { DirectiveRow } from "../storage/entities.js";
import { loadSettings, storedStateOf } from "../storage/repository.js";
import { derivedCodeSql, settledActiveSql, stateOfCode, storedCodeSql } from "./derivation-sql.js";
import { createTransitionTemplates, transitionAudit, uuidv7Run, type TransitionTemplate } from "./transition-templates.js";

/**
 * Reconcile page sizes: 0 → 1,000, at most 50,000 (proto ReconcileRequest.page_size). A page is
 * one statement (PostgreSQL) or one short transaction (SQLite); 50,000 rows keep it well under a
 * second while making the per-page round trips (RPC, progress report) a small share of a sweep.
 */
export const RECONCILE_PAGE = { default: 1_000, max: 50_000 } as const;

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

/** How often a page whose write lost a database race (deadlock, busy snapshot) is re-run. */
const MAX_ATTEMPTS = 5;

/** A changed row of the page as the database reported it. */
interface MovedRow {
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
interface PageOutcome {
  examined: number;
  next: string;
  moved: MovedRow[];
  /** Bulk transitions applied and counted in SQL, not listed in `moved`. */
  tallied: TalliedTransitions[];
}

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

/** The page's upper bound as a condition on `alias.id` (nothing when the range runs to the end), with its parameters. */
function rangeBound(input: ReconcilePageInput): { sql: (alias: string) => string; params: unknown[] } {
  const upTo = input.upToDeploymentId ?? "";
  return upTo === "" ? { sql: () => "", params: [] } : { sql: (alias) => ` and ${alias}.id <= ?`, params: [upTo] };
}

/** The columns of a changed row the PostgreSQL statement carries from its read to its write. */
const MOVED_COLUMNS = ["id", "version", "last_seen_at", "state", "lock_reason", "f", "t"] as const;

/** The templates as a CTE `tpl(...)` of bound values (PostgreSQL's statement), with its parameters. */
function templatesCte(templates: readonly TransitionTemplate[]): { sql: string; params: unknown[] } {
  const params: unknown[] = [];
  const rows = templates.map((t) => {
    params.push(t.from, t.to, t.toState, t.toLockReason, t.pin ? 1 : 0, t.action, JSON.stringify(t.parts), t.directive, t.directivePayload);
    return "(cast(? as integer), cast(? as integer), cast(? as text), cast(? as text), cast(? as integer), cast(? as text), cast(? as text), cast(? as text), cast(? as text))";
  });
  return {
    sql: `tpl(f, t, to_state, to_reason, pin, action, parts, directive, dpayload) as (values ${rows.join(", ")})`,
    params,
  };
}

/**
 * PostgreSQL's audit events of a page as outbox rows (SQLite's are encoded in JS by
 * `encodeEventRun`, one INSERT per kind): ONE row per transition kind, holding the run of its
 * events (@lcp/persistence `EventRun`: the kind's template, the first event id, the deployment
 * ids) — the same events, ids and order one row per event would hold, for a fraction of the
 * bytes written in the page's transaction; the relay expands them when it ships. Reads `won`
 * (id, f, t, rn: numbered by kind, then id, from 1) and `tpl`; the row's id is its first event's.
 * Its parameters: {@link runParams}.
 */
function runInsertSql(): string {
  const start = "(cast(? as bigint) + min(w.rn))";
  return (
    `insert into outbox_event (id, action, occurred_at, payload, delivered_at, attempts, last_error) ` +
    `select cast(? as text) || lpad(to_hex(${start}), 12, '0'), min(tpl.action), cast(? as timestamptz), ` +
    `cast(? as text) || count(*) || cast(? as text) || ${start} || ',"parts":' || min(tpl.parts) || ',"resourceIds":[' || ` +
    `string_agg(to_json(w.id)::text, ',' order by w.rn) || ']}', null, 0, null ` +
    `from won w join tpl on tpl.f = w.f and tpl.t = w.t group by w.f, w.t order by min(w.rn)`
  );
}

/** The bound values of {@link runInsertSql}: the page's run of event ids (see `uuidv7Run`) and occurred_at. */
function runParams(events: { prefix: string; base: number }, occurredAt: unknown): unknown[] {
  return [events.prefix, events.base, occurredAt, EVENT_RUN_PREFIX, `:{"idPrefix":${JSON.stringify(events.prefix)},"idStart":`, events.base];
}

/** The database's rows of a page outcome: stats on every row, a moved row when `id` is set. */
interface OutcomeRow {
  examined: number | string;
  more: unknown;
  last: string | null;
  id: string | null;
  state: string | null;
  lock_reason: string | null;
  t: number | string | null;
  won: unknown;
  bulk: unknown;
  directive: string | null;
  did: string | null;
  dpayload: string | null;
  /** Set on a tally row (id null): the kind's stored code and how many it applied. */
  f?: number | string | null;
  n?: number | string | null;
}

/** A tally row's kind and count. */
function talliedOf(r: OutcomeRow): TalliedTransitions {
  return { transition: { from: stateOfCode(Number(r.f)), to: stateOfCode(Number(r.t)) } as Transition, count: Number(r.n) };
}

function outcomeOf(rows: OutcomeRow[]): PageOutcome {
  const first = rows[0];
  const examined = Number(first?.examined ?? 0);
  const more = first?.more === true || first?.more === 1 || first?.more === "1" || first?.more === "t";
  const moved: MovedRow[] = [];
  const tallied: TalliedTransitions[] = [];
  for (const r of rows) {
    if (r.n !== null && r.n !== undefined) tallied.push(talliedOf(r));
    if (r.id === null) continue;
    moved.push({
      id: r.id,
      state: r.state ?? "",
      lockReason: r.lock_reason,
      to: Number(r.t),
      won: r.won === true || r.won === 1,
      bulk: r.bulk === true || r.bulk === 1,
      directive: r.directive && r.did ? { id: r.did, type: r.directive, payload: r.dpayload ?? "{}" } : null,
    });
  }
  return { examined, next: more && first?.last ? first.last : "", moved, tallied };
}

/**
 * PostgreSQL: the whole page in one statement (see the module comment). JIT is off for it: the
 * planner's estimates over the CTEs are large enough to trigger JIT compilation, which costs
 * several times the statement itself on a page.
 */
async function runPagePostgres(tx: EntityManager, input: ReconcilePageInput, settings: Settings, templates: TransitionTemplate[]): Promise<PageOutcome> {
  const conn = tx.getConnection();
  const ctx = tx.getTransactionContext();
  // For this transaction only, in one round trip: no JIT, and the page read in key order straight
  // from the primary key, as a bitmap scan would have to sort 50,000 ids again under the text collation.
  await conn.execute(
    "select set_config('jit', 'off', true), set_config('enable_bitmapscan', 'off', true)",
    [],
    "all",
    ctx,
  );
  const derived = derivedCodeSql("d", input.at, settings, true);
  const bound = rangeBound(input);
  const params: unknown[] = [];
  let sql = "with ";
  if (!input.dryRun) {
    const tpl = templatesCte(templates);
    sql += `${tpl.sql}, `;
    params.push(...tpl.params);
  }
  sql +=
    // One pass over the page in key order: the aggregate counts it, keeps its last id and collects
    // only the changed rows — the unchanged ones are never stored anywhere. max() runs under the C
    // collation: ids are ASCII, so it is the same id, found by byte compare.
    `agg as (select count(*) as examined, max(p.id collate "C") collate "default" as last, ` +
    `${MOVED_COLUMNS.map((c) => `array_agg(p.${c}) filter (where p.f <> p.t) as ${c}s`).join(", ")} ` +
    `from (select d.id, d.version, d.last_seen_at, d.state, d.lock_reason, ${storedCodeSql("d")} as f, ${derived.sql} as t ` +
    `from deployment d where d.id > ?${bound.sql("d")} order by d.id limit ?) p), ` +
    // "More follow" as an ordered LIMIT 1: one index probe (an EXISTS here was planned as a seq scan).
    `stats as (select examined, last, (select x.id from deployment x where x.id > agg.last${bound.sql("x")} order by x.id limit 1) is not null as more from agg), ` +
    `moved as (select u.* from agg, unnest(${MOVED_COLUMNS.map((c) => `agg.${c}s`).join(", ")}) as u(${MOVED_COLUMNS.join(", ")}))`;
  params.push(...derived.params, input.afterDeploymentId, ...bound.params, input.pageSize, ...bound.params);
  if (input.dryRun) {
    sql +=
      ` select s.examined, s.more, s.last, m.id, m.state, m.lock_reason, m.t, false as won, false as bulk, null as directive, null as did, null as dpayload ` +
      `from stats s left join moved m on true`;
  } else {
    const events = uuidv7Run(input.at.getTime());
    // Directive ids carry the wall clock, as every other directive's does, so they keep ordering
    // a deployment's directives.
    const directives = uuidv7Run(Date.now());
    sql +=
      `, upd as (update deployment d set state = tpl.to_state, lock_reason = tpl.to_reason, state_changed_at = ?, updated_at = ?, version = d.version + 1 ` +
      `from moved m join tpl on tpl.f = m.f and tpl.t = m.t ` +
      // The range bound keeps the planner on the page's rows, never a scan of the whole table.
      `where d.id = m.id and d.id > ? and d.id <= (select last from stats) and d.version = m.version ` +
      `and (tpl.pin = 0 or d.last_seen_at is not distinct from m.last_seen_at) ` +
      // Only the keys come back: the templates' text is joined in after, not copied per updated row.
      `returning d.id, tpl.f, tpl.t), ` +
      // Numbered by kind, then id: each kind's events are one run of consecutive event ids.
      `won as (select u.id, u.f, u.t, tpl.directive, tpl.dpayload, row_number() over (order by u.f, u.t, u.id collate "C") as rn, ` +
      `? || lpad(to_hex(cast(? as bigint) + row_number() over (order by u.f, u.t, u.id collate "C")), 12, '0') as did ` +
      `from upd u join tpl on tpl.f = u.f and tpl.t = u.t), ` +
      `ev as (${runInsertSql()}), ` +
      `dir as (insert into directive (id, deployment_id, type, payload, created_at, acked_at) ` +
      `select did, id, directive, dpayload, ?, null from won where directive is not null) ` +
      // Every changed row comes back — or, for counts only, just those the caller must act on
      // (a directive to push, a conflict, a kind without a template) and a tally per kind of the rest.
      `select s.examined, s.more, s.last, x.* from stats s left join (` +
      `select m.id, m.state, m.lock_reason, m.t, w.id is not null as won, ` +
      `exists (select 1 from tpl where tpl.f = m.f and tpl.t = m.t) as bulk, w.directive, case when w.directive is null then null else w.did end as did, w.dpayload, ` +
      `cast(null as integer) as f, cast(null as bigint) as n ` +
      `from moved m left join won w on w.id = m.id where not cast(? as boolean) or w.id is null or w.directive is not null ` +
      `union all select null, null, null, w.t, true, true, null, null, null, w.f, count(*) from won w where cast(? as boolean) and w.directive is null group by w.f, w.t` +
      `) x on true`;
    const countsOnly = input.countsOnly === true;
    params.push(input.at, input.at, input.afterDeploymentId, directives.prefix, directives.base, ...runParams(events, input.at), input.at, countsOnly, countsOnly);
  }
  const rows = await conn.execute<OutcomeRow[]>(sql, params, "all", ctx);
  return outcomeOf(rows);
}

/**
 * SQLite: the page in one transaction, each step one statement —
 * 1. its extent: the last id found by skipping `pageSize - 1` keys of the primary key's index (no
 *    row is read; only a short last page is counted);
 * 2. its changed rows, derived in one scan in key order into a temp table (with their rowids, so
 *    the UPDATE finds each row without a second index search); a row that is ACTIVE and settled
 *    ({@link settledActiveSql}) is passed over before its derivation;
 * 3. the changed rows' kinds: one aggregate returns each kind's ids in key order;
 * 4. per kind with a template: its outbox run (encoded here by `encodeEventRun`), its directives,
 *    and its UPDATE with compare-and-set on `version`.
 * Each kind's events and directives are numbered consecutively, kinds in (from, to) order, ids in
 * key order — as on PostgreSQL. Datetimes are epoch milliseconds.
 */
async function runPageSqlite(
  tx: EntityManager,
  input: ReconcilePageInput,
  settings: Settings,
  hooks: ReconcileHooks,
): Promise<PageOutcome> {
  const conn = tx.getConnection();
  const ctx = tx.getTransactionContext();
  const run = (sql: string, params: unknown[] = []) => conn.execute(sql, params, "run", ctx);
  const all = <T>(sql: string, params: unknown[] = []) => conn.execute<T[]>(sql, params, "all", ctx);

  const bound = rangeBound(input);
  const after = input.afterDeploymentId;
  const [end] = await all<{ id: string }>(`select id from deployment d where id > ?${bound.sql("d")} order by id limit 1 offset ?`, [
    after,
    ...bound.params,
    input.pageSize - 1,
  ]);
  let examined = input.pageSize;
  let last = end?.id ?? null;
  if (!end) {
    const [rest] = await all<{ examined: number; last: string | null }>(`select count(*) as examined, max(id) as last from deployment d where id > ?${bound.sql("d")}`, [
      after,
      ...bound.params,
    ]);
    examined = Number(rest?.examined ?? 0);
    last = rest?.last ?? null;
  }
  if (examined === 0 || last === null) return { examined: 0, next: "", moved: [], tallied: [] };
  const more = end !== undefined && (await all<{ id: string }>(`select id from deployment d where id > ?${bound.sql("d")} limit 1`, [last, ...bound.params])).length > 0;
  const next = more ? last : "";

  // A temp table lives in SQLite's separate temp database: filling it takes no lock on the main one.
  // No key on it, on purpose: each UPDATE below walks these few rows and finds each deployment by
  // its rowid; with an index here SQLite prefers to scan the whole deployment table instead. Its
  // own rowids count the rows in key order.
  await run(`create temp table if not exists reconcile_moved_rows (rid integer, id text, version integer, state text, lock_reason text, f integer, t integer)`);
  await run(`delete from temp.reconcile_moved_rows`);
  const derived = derivedCodeSql("d", input.at, settings, false);
  const settled = settledActiveSql("d", input.at, settings, false);
  await run(
    `insert ${SQLITE_NO_STATEMENT_JOURNAL} into temp.reconcile_moved_rows (rid, id, version, state, lock_reason, f, t) select rid, id, version, state, lock_reason, f, t from ` +
      `(select d.rowid as rid, d.id, d.version, d.state, d.lock_reason, ${storedCodeSql("d")} as f, ${derived.sql} as t ` +
      `from deployment d where d.id > ? and d.id <= ? and not ${settled.sql} order by d.id) where f <> t`,
    [...derived.params, after, last, ...settled.params],
  );
  if (input.dryRun) {
    const rows = await all<MovedSqliteRow>(`select id, state, lock_reason, t from temp.reconcile_moved_rows order by rowid`);
    return {
      examined,
      next,
      moved: rows.map((r) => ({ id: r.id, state: r.state, lockReason: r.lock_reason, to: r.t, won: false, bulk: false, directive: null })),
      tallied: [],
    };
  }
  await hooks.afterRead?.();

  const kinds = await all<{ f: number; t: number; ids: string }>(
    `select f, t, group_concat(id, ',' order by rowid) as ids from temp.reconcile_moved_rows group by f, t order by f, t`,
  );
  const present = new Set(kinds.map((k) => k.f * 8 + k.t));
  const templateOf = new Map(createTransitionTemplates(input, (f, t) => present.has(f * 8 + t)).map((tpl) => [tpl.from * 8 + tpl.to, tpl]));
  const events = uuidv7Run(input.at.getTime());
  const directives = uuidv7Run(Date.now());
  const at = input.at.getTime();
  const moved: MovedRow[] = [];
  const tallied: TalliedTransitions[] = [];
  let numbered = 0;
  for (const kind of kinds) {
    const ids = kind.ids.split(",");
    const tpl = templateOf.get(kind.f * 8 + kind.t);
    if (!tpl) {
      // No template (a lease to sign, or junk in the stored columns): the one-deployment path's.
      for (const id of ids) moved.push({ id, state: "", lockReason: null, to: kind.t, won: false, bulk: false, directive: null });
      continue;
    }
    const first = events.base + numbered + 1;
    const firstDirective = directives.base + numbered + 1;
    numbered += ids.length;
    // The kind's events as one outbox row (its id is its first event's).
    const eventRun = encodeEventRun({ idPrefix: events.prefix, idStart: first, parts: tpl.parts, resourceIds: ids });
    await run(`insert into outbox_event (id, action, occurred_at, payload, delivered_at, attempts, last_error) values (?, ?, ?, ?, null, 0, null)`, [
      runUuid(events.prefix, first),
      tpl.action,
      at,
      eventRun,
    ]);
    if (tpl.directive) {
      await run(
        `insert ${SQLITE_NO_STATEMENT_JOURNAL} into directive (id, deployment_id, type, payload, created_at, acked_at) ` +
          `select ? || printf('%012x', ? + row_number() over (order by rowid)), id, ?, ?, ?, null from temp.reconcile_moved_rows where f = ? and t = ?`,
        [directives.prefix, firstDirective - 1, tpl.directive, tpl.directivePayload, at, kind.f, kind.t],
      );
    }
    const updated = await run(
      `update ${SQLITE_NO_STATEMENT_JOURNAL} deployment set state = ?, lock_reason = ?, state_changed_at = ?, updated_at = ?, version = deployment.version + 1 ` +
        `from temp.reconcile_moved_rows m where m.f = ? and m.t = ? and deployment.rowid = m.rid and deployment.version = m.version`,
      [tpl.toState, tpl.toLockReason, at, at, kind.f, kind.t],
    );
    // Serialisable: every row read above is still as read. Anything else is a bug, not a race,
    // and must not commit events for rows that were not written.
    const changes = Number((updated as { affectedRows?: number; changes?: number }).affectedRows ?? (updated as { changes?: number }).changes);
    if (changes !== ids.length) throw new Error(`reconcile: wrote ${changes} of ${ids.length} planned rows in a serialised transaction`);
    const from = stateOfCode(kind.f)!;
    if (input.countsOnly === true && !tpl.directive) {
      tallied.push({ transition: { from, to: stateOfCode(kind.t)! }, count: ids.length });
      continue;
    }
    ids.forEach((id, i) =>
      moved.push({
        id,
        state: from.state,
        lockReason: from.lockReason,
        to: kind.t,
        won: true,
        bulk: true,
        directive: tpl.directive ? { id: runUuid(directives.prefix, firstDirective + i), type: tpl.directive, payload: tpl.directivePayload ?? "{}" } : null,
      }),
    );
  }
  return { examined, next, moved, tallied };
}

/**
 * The conflict clause of the SQLite page's multi-row writes. Inside a transaction, a statement
 * that could fail part-way (a NOT NULL column, a foreign key) makes SQLite keep a statement
 * journal: a copy of every page the statement changes, so that the statement alone can be undone
 * — megabytes for a 50,000-row page, spilled to a temp file, a large share of the UPDATE. `OR
 * FAIL` stops at a failing row without undoing the rows before it, so no journal is kept. Nothing
 * is lost: the page's transaction is the unit, and any error rolls the whole of it back. (An
 * autocommitted statement, like the bench's bare UPDATE, keeps none either.)
 */
const SQLITE_NO_STATEMENT_JOURNAL = "or fail";

/** A changed row as the SQLite page's temp table holds it. */
interface MovedSqliteRow {
  id: string;
  state: string;
  lock_reason: string | null;
  t: number;
}
