/**
 * A reconcile page on PostgreSQL: the whole page in one statement of data-modifying CTEs (read and
 * derive, compare-and-set UPDATE, outbox runs and directives from the rows it wrote); see
 * `reconcile-page.ts` for the design.
 */
import type { Settings, Transition } from "@lcp/domain";
import { EVENT_RUN_PREFIX } from "@lcp/persistence";
import type { EntityManager } from "@mikro-orm/knex";
import { derivedCodeSql, stateOfCode, storedCodeSql } from "./derivation-sql.js";
import { rangeBound, type MovedRow, type PageOutcome, type ReconcilePageInput, type TalliedTransitions } from "./page-types.js";
import { uuidv7Run, type TransitionTemplate } from "./transition-templates.js";

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
export async function runPagePostgres(tx: EntityManager, input: ReconcilePageInput, settings: Settings, templates: TransitionTemplate[]): Promise<PageOutcome> {
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
