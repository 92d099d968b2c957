/**
 * A reconcile page on SQLite (no DML in CTEs): a few statements in one serialisable transaction;
 * see `reconcile-page.ts` for the design.
 */
import type { Settings } from "@lcp/domain";
import { encodeEventRun, runUuid } from "@lcp/persistence";
import type { EntityManager } from "@mikro-orm/knex";
import { derivedCodeSql, settledActiveSql, stateOfCode, storedCodeSql } from "./derivation-sql.js";
import { rangeBound, type MovedRow, type PageOutcome, type ReconcileHooks, type ReconcilePageInput, type TalliedTransitions } from "./page-types.js";
import { createTransitionTemplates, uuidv7Run } from "./transition-templates.js";

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
export async function runPageSqlite(
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
