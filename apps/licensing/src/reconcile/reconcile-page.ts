/**
 * The licensing side of the fleet sweep (DESIGN.md §9, issue 6): re-derive one keyset page of
 * deployments at the sweep's `now`, and apply every transition with compare-and-set on the
 * deployment's version — set-based: the page's extent comes from the primary key, its candidate
 * rows (state derived in SQL ≠ stored) from one query, the domain re-derives each candidate, and
 * the changed rows are written with one `UPDATE … FROM (VALUES …) RETURNING`, their directives and
 * audit events with multi-row INSERTs, all in one transaction. A row whose version moved since the read (an operator,
 * a heartbeat that changed state, a concurrent sweep) is not written: it counts as a conflict and
 * the next sweep judges it on fresh facts. Re-running a page over unchanged facts writes nothing.
 *
 * `last_seen_at` is the one fact written WITHOUT a version bump (the heartbeat's batched flush),
 * so the compare-and-set also pins the `last_seen_at` the decision was made on whenever the
 * derived state depends on it: a box whose beat landed between our read and our write is never
 * sent to GRACE (or LOCKED(OFFLINE)) on the older value.
 *
 * Transitions whose directives carry a new lease (→ ACTIVE or → SUSPENDED of a bound box: the
 * REACTIVATE/SUSPEND + RENEW_LEASE pair) need a signature from signing-keys; those rare rows go
 * through the one-deployment path (`applyDeploymentChange`), which signs before its transaction
 * and re-derives on the row it compares-and-sets against.
 */
import { toJsonString } from "@bufbuild/protobuf";
import {
  auditActionFor,
  deriveState,
  directivesFor,
  transitionOf,
  type DerivedState,
  type Settings,
  type StateDirective,
  type Transition,
} from "@lcp/domain";
import { isSerializationFailure, newAuditEvent } from "@lcp/persistence";
import { AuditEventSchema } from "@lcp/proto/audit/v1/audit_service_pb";
import type { Directive } from "@lcp/proto/licensing/v1/types_pb";
import { DomainError } from "@lcp/rpc";
import type { EntityManager } from "@mikro-orm/knex";
import { v7 as uuidv7 } from "uuid";
import type { CallContext } from "../core/audit.js";
import { applyDeploymentChange, publishSafely, type CoreDeps } from "../core/deployment-change.js";
import { directiveToProto } from "../mapping.js";
import { DirectiveEntity, type DeploymentRow, type DirectiveRow } from "../storage/entities.js";
import { factsOf, loadSettings, storedStateOf } from "../storage/repository.js";

/** Reconcile page sizes: 0 → 1,000, at most 5,000 (proto ReconcileRequest.page_size). */
export const RECONCILE_PAGE = { default: 1_000, max: 5_000 } as const;

/** One page to reconcile. */
export interface ReconcilePageInput {
  /** Derive at this time (already checked against max_clock_skew). */
  at: Date;
  /** Keyset cursor: only ids greater than this; from the start when empty. */
  afterDeploymentId: string;
  pageSize: number;
  dryRun: boolean;
  /** The sweep run, recorded in each transition's audit event. */
  sweepId: string;
  call: CallContext;
}

/** One transition applied (or, in a dry run, planned). */
export interface AppliedTransition {
  deploymentId: string;
  transition: Transition;
}

/** What a page did. */
export interface ReconcilePageResult {
  examined: number;
  /** In deployment id order. */
  transitions: AppliedTransition[];
  conflicts: number;
  /** Empty when this was the last page. */
  nextAfterDeploymentId: string;
}

/** Test-only seams: run something between the page read and its write (to stage a race). */
export interface ReconcileHooks {
  afterRead?(): Promise<void> | void;
}

/** How often a page whose write lost a database race (deadlock, busy) is re-read and retried. */
const MAX_ATTEMPTS = 5;
/** Rows per INSERT: keeps every statement under SQLite's 32,766 bound parameters. */
const INSERT_CHUNK = 1_000;
/** Outbox rows per INSERT (4 parameters each). */
const OUTBOX_CHUNK = 5_000;

// The same reasons the one-deployment path gives (core/deployment-change.ts), for the directives
// the set-based path writes (LOCK only: the others need a lease and take that path).
const DIRECTIVE_REASONS: Record<string, string> = {
  REVOKED: "the licence was revoked",
  EXPIRED: "the licence term has ended",
  OFFLINE: "offline longer than the grace window",
  PENDING: "the licence was moved to another box",
};

interface Planned {
  row: DeploymentRow;
  transition: Transition;
  directives: StateDirective[];
}

/** Whether a transition's directives need a freshly signed lease (the one-deployment path). */
function needsLease(directives: readonly StateDirective[]): boolean {
  return directives.includes("RENEW_LEASE");
}

/**
 * Whether the derived state was decided by `last_seen_at`: revocation, expiry and an unbound
 * licence outrank it (deriveState's order), every other state depends on how long the box was silent.
 */
function dependsOnLastSeen(derived: DerivedState): boolean {
  if (derived.state === "PENDING") return false;
  return !(derived.state === "LOCKED" && (derived.lockReason === "REVOKED" || derived.lockReason === "EXPIRED"));
}

function byId(a: AppliedTransition, b: AppliedTransition): number {
  return a.deploymentId < b.deploymentId ? -1 : a.deploymentId > b.deploymentId ? 1 : 0;
}

/** Reconciles one keyset page (see the module comment). */
export async function reconcilePage(deps: CoreDeps, input: ReconcilePageInput, hooks: ReconcileHooks = {}): Promise<ReconcilePageResult> {
  const applied: AppliedTransition[] = [];
  let conflicts = 0;
  let page: { rows: DeploymentRow[]; examined: number; next: string; settings: Settings };
  let signed: Planned[];
  let publish: Array<{ deploymentId: string; directives: Directive[] }> = [];

  // Read, decide and write the set-based part; a lost database race re-reads the page, so the
  // retry decides on fresh facts (nothing of a failed attempt was committed).
  for (let attempt = 1; ; attempt++) {
    page = await readPage(deps, input);
    const bulk: Planned[] = [];
    signed = [];
    for (const row of page.rows) {
      const derived = deriveState(factsOf(row), input.at.getTime(), page.settings);
      const transition = transitionOf(storedStateOf(row), derived);
      if (!transition) continue;
      const directives = directivesFor(transition);
      (needsLease(directives) ? signed : bulk).push({ row, transition, directives });
    }
    if (input.dryRun) {
      const planned = [...bulk, ...signed].map(({ row, transition }) => ({ deploymentId: row.id, transition })).sort(byId);
      return { examined: page.examined, transitions: planned, conflicts: 0, nextAfterDeploymentId: page.next };
    }
    await hooks.afterRead?.();
    if (bulk.length === 0) break;
    try {
      const result = await deps.db.transactional((tx) => applyBulk(deps, tx, input, bulk));
      conflicts += bulk.length - result.won.length;
      applied.push(...result.won);
      publish = result.publish;
      break;
    } catch (err) {
      if (isSerializationFailure(err) && attempt < MAX_ATTEMPTS) {
        deps.log.debug({ attempt, after: input.afterDeploymentId }, "reconcile page lost a database race, retrying");
        continue;
      }
      throw err;
    }
  }

  // Rare: → ACTIVE / → SUSPENDED of a bound box need a signed lease, so one at a time through the
  // path every command uses. It re-derives on the row it compares-and-sets against; finding
  // nothing left to change means a concurrent writer got there first (a conflict).
  for (const { row } of signed) {
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
  return { examined: page.examined, transitions: applied, conflicts, nextAfterDeploymentId: page.next };
}

/**
 * One keyset page: its extent from the primary key alone (index-only: how many rows, the last id,
 * whether more follow), then only its CANDIDATES — rows whose state derived in SQL differs from the
 * stored one ({@link derivedDiffersSql}). The domain re-derives every candidate and is the judge;
 * the SQL only spares an unchanged fleet the trip of every row into JavaScript.
 */
async function readPage(deps: CoreDeps, input: ReconcilePageInput): Promise<{ rows: DeploymentRow[]; examined: number; next: string; settings: Settings }> {
  const em = deps.db.em();
  const conn = em.getConnection();
  const settings = await loadSettings(em, input.at);
  const after = input.afterDeploymentId;
  // The page's last id and the first id after it, if any (LIMIT 2 past pageSize - 1 ids).
  const edge = await conn.execute<Array<{ id: string }>>(
    `select id from deployment where id > ? order by id limit 2 offset ?`,
    [after, input.pageSize - 1],
    "all",
  );
  let examined = input.pageSize;
  let last = edge[0]?.id;
  if (last === undefined) {
    // A short (final) page: count what is left, and take its last id.
    const rest = await conn.execute<Array<{ n: number | string; last: string | null }>>(
      `select count(*) as n, max(id) as last from deployment where id > ?`,
      [after],
      "all",
    );
    examined = Number(rest[0]?.n ?? 0);
    last = rest[0]?.last ?? undefined;
  }
  const next = edge.length === 2 ? edge[0]!.id : "";
  if (examined === 0 || last === undefined) return { rows: [], examined: 0, next: "", settings };

  const pg = deps.db.driver === "postgresql";
  const { sql, params } = derivedDiffersSql(input.at, settings, pg);
  const raw = await conn.execute<Array<Record<string, unknown>>>(
    `select id, state, lock_reason, version, license_revoked_at, license_expires_at, activated_at, fingerprint_hash, last_seen_at, subscription_status ` +
      `from deployment where id > ? and id <= ? and ${sql} order by id`,
    [after, last, ...params],
    "all",
  );
  return { rows: raw.map(pageRowOf), examined, next, settings };
}

/**
 * `deriveState` written as SQL, compared with the stored state: true for a row whose state would
 * change at `at`. Same order of checks as the domain (revoked, no licence, expired, unbound,
 * offline past the grace window, suspended, silent past the timeout, active), the same strict
 * boundaries, and last seen falling back to the activation time.
 */
export function derivedDiffersSql(at: Date, settings: Settings, pg: boolean): { sql: string; params: unknown[] } {
  // MikroORM keeps SQLite datetimes as epoch milliseconds; PostgreSQL compares timestamptz.
  const t = (ms: number): unknown => (pg ? new Date(ms) : ms);
  const ts = pg ? "cast(? as timestamptz)" : "?";
  const now = at.getTime();
  const seen = "coalesce(last_seen_at, activated_at)";
  const derived =
    `case when license_revoked_at is not null then 'LOCKED:REVOKED' ` +
    `when license_expires_at is null then 'PENDING:' ` +
    `when license_expires_at <= ${ts} then 'LOCKED:EXPIRED' ` +
    `when activated_at is null or fingerprint_hash is null then 'PENDING:' ` +
    `when ${seen} < ${ts} then 'LOCKED:OFFLINE' ` +
    `when subscription_status = 'INVALID' then 'SUSPENDED:' ` +
    `when ${seen} < ${ts} then 'GRACE:' ` +
    `else 'ACTIVE:' end`;
  return {
    sql: `(${derived}) <> (state || ':' || coalesce(lock_reason, ''))`,
    params: [t(now), t(now - settings.graceWindowMs), t(now - settings.heartbeatTimeoutMs)],
  };
}

/** A datetime column as the driver returns it (PostgreSQL: Date; SQLite: epoch ms). */
function dateOf(value: unknown): Date | null {
  if (value == null) return null;
  if (value instanceof Date) return value;
  if (typeof value === "string" && !/^\d+$/.test(value)) return new Date(value);
  return new Date(Number(value));
}

/** The columns of a raw page row as the ORM would hydrate them (what factsOf/storedStateOf read). */
function pageRowOf(r: Record<string, unknown>): DeploymentRow {
  return {
    id: r.id as string,
    state: r.state as string,
    lockReason: (r.lock_reason as string | null) ?? null,
    version: Number(r.version),
    licenseRevokedAt: dateOf(r.license_revoked_at),
    licenseExpiresAt: dateOf(r.license_expires_at),
    activatedAt: dateOf(r.activated_at),
    fingerprintHash: (r.fingerprint_hash as string | null) ?? null,
    lastSeenAt: dateOf(r.last_seen_at),
    subscriptionStatus: r.subscription_status as string,
  } as DeploymentRow;
}

function transitionAudit(deploymentId: string, transition: Transition, directives: StateDirective[], sweepId: string) {
  return {
    action: auditActionFor(transition),
    resource: { type: "deployment" as const, id: deploymentId },
    details: {
      from: transition.from.state,
      to: transition.to.state,
      ...(transition.from.lockReason ? { fromLockReason: transition.from.lockReason } : {}),
      ...(transition.to.lockReason ? { lockReason: transition.to.lockReason } : {}),
      directives,
      sweepId,
    },
  };
}

/**
 * The audit events of one page, rendered from templates. Every event of a page shares its actor,
 * request id, time and sweep id, and its details depend only on the kind of transition; so each
 * kind is built ONCE by the real `newAuditEvent` + protobuf JSON encoder with sentinel ids, and each
 * row's event is that JSON with its own event id and deployment id put in (both UUIDs: nothing to
 * escape). Byte for byte what `recordAudit` stores, at a fraction of the cost of encoding 5,000
 * messages (a test decodes rendered events and compares them with directly built ones).
 */
export function createEventTemplates(input: Pick<ReconcilePageInput, "at" | "sweepId" | "call">) {
  const EVENT_ID = "00000000-0000-7000-8000-0000000e7e17";
  const RESOURCE_ID = "00000000-0000-7000-8000-00000000de91";
  const EVENT_SLOT = Symbol("event id");
  const RESOURCE_SLOT = Symbol("deployment id");
  const templates = new Map<string, { action: string; parts: Array<string | symbol> }>();
  return {
    render(deploymentId: string, transition: Transition, directives: StateDirective[]): { id: string; action: string; payload: string } {
      const key = `${transition.from.state}:${transition.from.lockReason}>${transition.to.state}:${transition.to.lockReason}`;
      let t = templates.get(key);
      if (!t) {
        const spec = transitionAudit(RESOURCE_ID, transition, directives, input.sweepId);
        const event = newAuditEvent({
          action: spec.action,
          actor: input.call.actor,
          resource: spec.resource,
          outcome: "success",
          requestId: input.call.requestId,
          details: spec.details,
          now: input.at,
        });
        event.id = EVENT_ID;
        const json = toJsonString(AuditEventSchema, event);
        // Split around the two sentinels (wherever the encoding put them) into literal pieces and slots.
        const parts: Array<string | typeof EVENT_SLOT | typeof RESOURCE_SLOT> = [];
        json.split(EVENT_ID).forEach((piece, i) => {
          if (i > 0) parts.push(EVENT_SLOT);
          piece.split(RESOURCE_ID).forEach((literal, j) => {
            if (j > 0) parts.push(RESOURCE_SLOT);
            parts.push(literal);
          });
        });
        t = { action: spec.action, parts };
        templates.set(key, t);
      }
      // Same id scheme as newAuditEvent: UUIDv7 at the event's time.
      const id = uuidv7({ msecs: input.at.getTime() });
      const payload = t.parts.map((p) => (p === EVENT_SLOT ? id : p === RESOURCE_SLOT ? deploymentId : (p as string))).join("");
      return { id, action: t.action, payload };
    },
  };
}

/**
 * One transaction: a single compare-and-set UPDATE for every changed row (RETURNING the rows that
 * won), then the winners' directives and audit events in batched INSERTs.
 */
async function applyBulk(
  deps: CoreDeps,
  tx: EntityManager,
  input: ReconcilePageInput,
  bulk: Planned[],
): Promise<{ won: AppliedTransition[]; publish: Array<{ deploymentId: string; directives: Directive[] }> }> {
  const { at } = input;
  const pg = deps.db.driver === "postgresql";
  // MikroORM keeps SQLite datetimes as epoch milliseconds; PostgreSQL takes the Date.
  const date = (d: Date | null | undefined): unknown => (d == null ? null : pg ? d : d.getTime());
  const seenType = pg ? "timestamptz" : "integer";
  const values: string[] = [];
  const params: unknown[] = [];
  for (const { row, transition } of bulk) {
    values.push(`(?, cast(? as integer), ?, ?, cast(? as integer), cast(? as ${seenType}))`);
    params.push(row.id, row.version, transition.to.state, transition.to.lockReason, dependsOnLastSeen(transition.to) ? 1 : 0, date(row.lastSeenAt));
  }
  // Null-safe equality: a box never seen (null) must still match itself. The unary `+` keeps
  // SQLite from indexing v by version (all alike) and scanning the whole table against it: v
  // stays the outer loop and each row is found by primary key.
  const sameSeen = pg ? "deployment.last_seen_at is not distinct from v.last_seen_at" : "deployment.last_seen_at is v.last_seen_at";
  const sql =
    `with v(id, version, state, lock_reason, pin_seen, last_seen_at) as (values ${values.join(", ")}) ` +
    `update deployment set state = v.state, lock_reason = v.lock_reason, state_changed_at = ?, updated_at = ?, version = deployment.version + 1 ` +
    `from v where deployment.id = v.id and deployment.version = +v.version and (v.pin_seen = 0 or ${sameSeen}) ` +
    `returning deployment.id as id`;
  const won = await tx.getConnection().execute<Array<{ id: string }>>(sql, [...params, date(at), date(at)], "all", tx.getTransactionContext());
  const winners = new Set(won.map((r) => r.id));

  const directiveRows: DirectiveRow[] = [];
  const outboxParams: unknown[] = [];
  const result: AppliedTransition[] = [];
  const publish: Array<{ deploymentId: string; directives: Directive[] }> = [];
  const events = createEventTemplates(input);
  for (const { row, transition, directives } of bulk) {
    if (!winners.has(row.id)) continue;
    result.push({ deploymentId: row.id, transition });
    const reason = DIRECTIVE_REASONS[transition.to.lockReason ?? transition.to.state] ?? transition.to.state;
    const forBox = directives.map(
      (type) =>
        ({
          // uuid's v7 state is monotonic in the process: ids order a deployment's directives.
          id: uuidv7(),
          deploymentId: row.id,
          type,
          payload: JSON.stringify({ reason }),
          createdAt: at,
          ackedAt: null,
        }) as DirectiveRow,
    );
    directiveRows.push(...forBox);
    if (forBox.length > 0) publish.push({ deploymentId: row.id, directives: forBox.map(directiveToProto) });
    const event = events.render(row.id, transition, directives);
    outboxParams.push(event.id, event.action, date(at), event.payload);
  }
  for (let i = 0; i < directiveRows.length; i += INSERT_CHUNK) await tx.insertMany(DirectiveEntity, directiveRows.slice(i, i + INSERT_CHUNK));
  // The outbox rows exactly as recordAudit writes them, in multi-row INSERTs instead of one by one.
  for (let i = 0; i < outboxParams.length; i += OUTBOX_CHUNK * 4) {
    const chunk = outboxParams.slice(i, i + OUTBOX_CHUNK * 4);
    const rows = Array.from({ length: chunk.length / 4 }, () => "(?, ?, ?, ?, null, 0, null)").join(", ");
    await tx
      .getConnection()
      .execute(`insert into outbox_event (id, action, occurred_at, payload, delivered_at, attempts, last_error) values ${rows}`, chunk, "run", tx.getTransactionContext());
  }
  return { won: result, publish };
}
