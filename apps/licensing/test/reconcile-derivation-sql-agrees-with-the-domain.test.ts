/**
 * Reconcile derives state in SQL and writes transitions, audit events and directives set-based in
 * the database; the domain (`deriveState`, `directivesFor`, `auditActionFor`) stays the
 * definition. Here random facts — crowded at every boundary of the derivation — prove, on both
 * drivers, that the SQL derives exactly the domain's state for every row, that a dry run plans
 * exactly the domain's transitions, that a real run leaves every row in its derived state with one
 * audit event (its outbox stores each kind's events as one run row, which expands byte for byte to
 * the encoder's text of what `newAuditEvent` builds) and one directive per transition, and that
 * a rendered template is byte for byte the encoder's event.
 */
import { fromJsonString, toJsonString } from "@bufbuild/protobuf";
import {
  DAY_MS,
  deriveState,
  DEFAULT_SETTINGS,
  DEPLOYMENT_STATES,
  directivesFor,
  LOCK_REASONS,
  transitionOf,
  type DerivedState,
} from "@lcp/domain";
import { createOrm, decodeEventRun, eventRunTexts, isEventRun, newAuditEvent, type Database } from "@lcp/persistence";
import { AuditEventSchema } from "@lcp/proto/audit/v1/audit_service_pb";
import { DirectiveType } from "@lcp/proto/licensing/v1/types_pb";
import { createLogger } from "@lcp/rpc";
import { rawQuery, testDatabases, type TestDatabaseOptions } from "@lcp/testing/db";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CallContext } from "../src/core/audit.js";
import { noopDirectivePublisher, type DirectivePublisher } from "../src/core/directive-publisher.js";
import type { CoreDeps } from "../src/core/deployment-change.js";
import { codeOfState, derivedCodeSql, settledActiveSql, STATE_CODES, storedCodeSql } from "../src/reconcile/derivation-sql.js";
import { findDeploymentPage } from "../src/licensing-service/queries.js";
import { reconcilePage } from "../src/reconcile/reconcile-page.js";
import { createTransitionTemplates, transitionAudit, uuidv7Run } from "../src/reconcile/transition-templates.js";
import { factsOf, storedStateOf } from "../src/storage/repository.js";
import type { DeploymentRow } from "../src/storage/entities.js";
import { entities, migrations } from "../src/storage/schema.js";

const call: CallContext = { actor: { kind: "service", id: "fleet-sweep" }, requestId: "req-1" };

/** The protobuf JSON texts of the events an outbox row holds (one, or a run's, in order). */
const outboxRowTexts = (row: { payload: string }): string[] => (isEventRun(row.payload) ? eventRunTexts(decodeEventRun(row.payload)) : [row.payload]);
const { heartbeatTimeoutMs: TIMEOUT, graceWindowMs: GRACE, airGappedLeaseMs: AIR_GAPPED_LEASE } = DEFAULT_SETTINGS;
/** An air-gapped lease shorter than the heartbeat timeout: the two measures of silence cross. */
const SHORT_AIR_GAPPED = { ...DEFAULT_SETTINGS, airGappedLeaseMs: TIMEOUT / 2, airGappedRenewAfterMs: TIMEOUT / 4 };

/** An offset crowded at the boundaries the derivation turns on. */
const around = (edges: number[]) => fc.oneof(fc.constantFrom(...edges.flatMap((e) => [e - 1, e, e + 1])), fc.integer({ min: 0, max: 2 * AIR_GAPPED_LEASE }));
const storedArb: fc.Arbitrary<DerivedState> = fc.oneof(
  fc.constantFrom(...DEPLOYMENT_STATES.filter((s) => s !== "LOCKED")).map((state) => ({ state, lockReason: null })),
  fc.constantFrom(...LOCK_REASONS).map((lockReason) => ({ state: "LOCKED" as const, lockReason })),
);
const rowArb = fc.record({
  revoked: fc.boolean(),
  expiresIn: fc.option(fc.oneof(fc.constantFrom(-1, 0, 1), fc.integer({ min: -DAY_MS, max: 365 * DAY_MS })), { nil: null }),
  activated: fc.boolean(),
  bound: fc.boolean(),
  silentFor: fc.option(around([0, TIMEOUT / 2, TIMEOUT, GRACE, AIR_GAPPED_LEASE]), { nil: null }),
  activatedAgo: around([TIMEOUT, GRACE, AIR_GAPPED_LEASE]),
  subscriptionInvalid: fc.boolean(),
  airGapped: fc.boolean(),
  stored: storedArb,
});
type Facts = typeof rowArb extends fc.Arbitrary<infer T> ? T : never;
/** Mostly a healthy ACTIVE box with one or two facts off: where the settled-ACTIVE test is decided. */
const mostly = <T>(usual: T, ...rare: T[]) => fc.oneof({ arbitrary: fc.constant(usual), weight: 4 }, { arbitrary: fc.constantFrom(...rare), weight: 1 });
const nearlySettledArb: fc.Arbitrary<Facts> = fc.record({
  revoked: mostly(false, true),
  expiresIn: fc.oneof({ arbitrary: fc.integer({ min: 2, max: 365 * DAY_MS }), weight: 4 }, { arbitrary: fc.constantFrom(null, -1, 0, 1), weight: 1 }),
  activated: mostly(true, false),
  bound: mostly(true, false),
  silentFor: fc.oneof({ arbitrary: around([0, TIMEOUT / 2, TIMEOUT, AIR_GAPPED_LEASE]), weight: 4 }, { arbitrary: fc.constant(null), weight: 1 }),
  activatedAgo: around([TIMEOUT, GRACE, AIR_GAPPED_LEASE]),
  subscriptionInvalid: mostly(false, true),
  airGapped: fc.boolean(),
  stored: mostly<DerivedState>({ state: "ACTIVE", lockReason: null }, { state: "GRACE", lockReason: null }, { state: "LOCKED", lockReason: "OFFLINE" }),
});

const idOf = (i: number) => `00000000-0000-7000-8000-${String(i).padStart(12, "0")}`;
const label = (tr: { from: DerivedState; to: DerivedState }) => `${tr.from.state}/${tr.from.lockReason}>${tr.to.state}/${tr.to.lockReason}`;

describe.each(testDatabases())("reconcile's SQL and the domain ($name)", (tdb) => {
  let db: Database;
  let opts: TestDatabaseOptions;
  let pg: boolean;
  const now = new Date();
  const t = now.getTime();
  beforeAll(async () => {
    opts = tdb.options("licensing");
    db = await createOrm({ ...opts, entities, migrations, logger: createLogger("test", "silent") });
    pg = Boolean(opts.databaseUrl);
  });
  afterAll(async () => {
    await db.close();
    await opts.cleanup();
  });

  const deps = (publisher: DirectivePublisher = noopDirectivePublisher): CoreDeps => ({
    db,
    now: () => now,
    // No transition the tests below make needs a lease: a signature request would be a bug.
    signer: { sign: () => Promise.reject(new Error("nothing here signs a lease")) },
    publisher,
    log: createLogger("test", "silent"),
  });
  const p = (n: number) => (pg ? `$${n}` : "?");
  const date = (ms: number | null) => (ms === null ? null : pg ? new Date(ms).toISOString() : ms);

  /** The row as the ORM would hydrate it, for the domain. */
  function rowOf(r: Facts): DeploymentRow {
    return {
      licenseRevokedAt: r.revoked ? new Date(t - 1_000) : null,
      licenseExpiresAt: r.expiresIn === null ? null : new Date(t + r.expiresIn),
      activatedAt: r.activated ? new Date(t - r.activatedAgo) : null,
      fingerprintHash: r.bound ? "a".repeat(64) : null,
      lastSeenAt: r.silentFor === null ? null : new Date(t - r.silentFor),
      subscriptionStatus: r.subscriptionInvalid ? "INVALID" : "VALID",
      connectivity: r.airGapped ? "AIR_GAPPED" : "ONLINE",
      state: r.stored.state,
      lockReason: r.stored.lockReason,
    } as DeploymentRow;
  }

  async function seed(rows: Facts[]): Promise<void> {
    await rawQuery(opts, "delete from deployment");
    await rawQuery(opts, "delete from outbox_event");
    await rawQuery(opts, "delete from directive");
    // One statement for the whole set: rawQuery opens a connection per call.
    const columns = 13;
    const values = rows.map((_, i) => {
      const n = (k: number) => p(i * columns + k);
      return `(${n(1)}, 'n', 'c', 'ON_PREM', ${n(2)}, ${n(3)}, ${n(4)}, ${n(5)}, ${n(6)}, ${n(7)}, ${n(8)}, ${n(9)}, ${n(10)}, 1, ${n(11)}, ${n(12)}, ${n(13)})`;
    });
    const params = rows.flatMap((r, i) => {
      const row = rowOf(r);
      return [
        idOf(i),
        row.subscriptionStatus,
        date(row.licenseRevokedAt?.getTime() ?? null),
        date(row.licenseExpiresAt?.getTime() ?? null),
        date(row.activatedAt?.getTime() ?? null),
        row.fingerprintHash,
        date(row.lastSeenAt?.getTime() ?? null),
        row.state,
        row.lockReason,
        date(t),
        date(t),
        date(t),
        row.connectivity,
      ];
    });
    await rawQuery(
      opts,
      `insert into deployment (id, name, customer, kind, subscription_status, license_revoked_at, license_expires_at, activated_at, fingerprint_hash, last_seen_at, state, lock_reason, state_changed_at, version, created_at, updated_at, connectivity)
       values ${values.join(", ")}`,
      params,
    );
  }

  it.each([
    ["the default settings", DEFAULT_SETTINGS],
    ["an air-gapped lease shorter than the heartbeat timeout", SHORT_AIR_GAPPED],
  ])("derives in SQL exactly the state deriveState derives, for every row (online and air-gapped), at every boundary, and passes over exactly the settled ACTIVE rows, under %s", async (_name, settings) => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.oneof(rowArb, nearlySettledArb), { minLength: 1, maxLength: 40 }), async (rows) => {
        await seed(rows);
        const derived = derivedCodeSql("d", now, settings, pg);
        const settled = settledActiveSql("d", now, settings, pg);
        // The same SQL text the page runs, with its parameters in the driver's placeholder style.
        // The SQLite page keeps a row when `not settled` holds: a NULL there would drop it, so
        // `s` is 0 only where that condition is true.
        let n = 0;
        const sql = `select d.id, ${storedCodeSql("d")} as f, ${derived.sql} as t, case when not ${settled.sql} then 0 else 1 end as s from deployment d order by d.id`.replace(
          /\?/g,
          () => p(++n),
        );
        const params = [...derived.params, ...settled.params].map((v) => (v instanceof Date ? v.toISOString() : v));
        const got = await rawQuery<{ id: string; f: number | string; t: number | string; s: number | string }>(opts, sql, params);
        expect(got.map((g) => [g.id, Number(g.f), Number(g.t), Number(g.s)])).toEqual(
          rows.map((r, i) => {
            const row = rowOf(r);
            const stored = codeOfState(storedStateOf(row));
            const derivedCode = codeOfState(deriveState(factsOf(row), t, settings));
            // Passed over exactly when stored and derived are ACTIVE and the box has been seen.
            const skipped = stored === STATE_CODES.ACTIVE && derivedCode === STATE_CODES.ACTIVE && row.lastSeenAt !== null;
            return [idOf(i), stored, derivedCode, skipped ? 1 : 0];
          }),
        );
      }),
      { numRuns: 25 },
    );
  });

  it.each([
    ["the default settings", DEFAULT_SETTINGS],
    ["an air-gapped lease shorter than the heartbeat timeout", SHORT_AIR_GAPPED],
  ])("the lists' state filter (deploymentStateCondition) keeps exactly the rows deriveState puts in each state, online and air-gapped, under %s", async (_name, settings) => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.oneof(rowArb, nearlySettledArb), { minLength: 1, maxLength: 40 }), async (rows) => {
        await seed(rows);
        for (const state of DEPLOYMENT_STATES) {
          const { page } = await findDeploymentPage(db.em(), { where: [], states: [state], afterId: null, pageSize: 500 }, now, settings);
          expect([state, page.map((r) => r.id)]).toEqual([
            state,
            rows.flatMap((r, i) => (deriveState(factsOf(rowOf(r)), t, settings).state === state ? [idOf(i)] : [])),
          ]);
        }
      }),
      { numRuns: 15 },
    );
  });

  it("a dry run plans exactly the domain's transitions", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(rowArb, { minLength: 1, maxLength: 40 }), async (rows) => {
        await seed(rows);
        const expected = rows.flatMap((r, i) => {
          const row = rowOf(r);
          const tr = transitionOf(storedStateOf(row), deriveState(factsOf(row), t, DEFAULT_SETTINGS));
          return tr ? [`${idOf(i)} ${label(tr)}`] : [];
        });
        const page = await reconcilePage(deps(), { at: now, afterDeploymentId: "", pageSize: 5_000, dryRun: true, sweepId: "s", call });
        expect(page.examined).toBe(rows.length);
        expect(page.nextAfterDeploymentId).toBe("");
        expect(page.transitions.map(({ deploymentId, transition }) => `${deploymentId} ${label(transition)}`)).toEqual(expected);
        expect(Number((await rawQuery<{ n: number | string }>(opts, "select count(*) as n from outbox_event"))[0]!.n)).toBe(0);
      }),
      { numRuns: 25 },
    );
  });

  // Rows whose transition would need a signed lease keep their derived state as stored: those
  // take the one-deployment path, proven elsewhere with real signing-keys.
  const noLease = rowArb.map((r) => {
    const row = rowOf(r);
    const derived = deriveState(factsOf(row), t, DEFAULT_SETTINGS);
    const tr = transitionOf(storedStateOf(row), derived);
    return tr && directivesFor(tr).includes("RENEW_LEASE") ? { ...r, stored: derived } : r;
  });

  it("a real run leaves every row in its derived state, with one audit event and the domain's directive per transition", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(noLease, { minLength: 1, maxLength: 30 }), async (rows) => {
        await seed(rows);
        const expected = new Map<string, { label: string; directives: string[]; event: ReturnType<typeof newAuditEvent> }>();
        for (const [i, r] of rows.entries()) {
          const row = rowOf(r);
          const tr = transitionOf(storedStateOf(row), deriveState(factsOf(row), t, DEFAULT_SETTINGS));
          if (!tr) continue;
          const directives = directivesFor(tr);
          const spec = transitionAudit(idOf(i), tr, directives, "sweep-1");
          expected.set(idOf(i), {
            label: label(tr),
            directives,
            event: newAuditEvent({ ...spec, actor: call.actor, outcome: "success", requestId: call.requestId, now }),
          });
        }
        // Pages of 7: the cursor walk is part of what is proven. Every directive written is pushed.
        const applied: string[] = [];
        const pushed: string[] = [];
        const publisher: DirectivePublisher = {
          publish: (deploymentId, directives) => {
            pushed.push(...directives.map((d) => `${deploymentId} ${d.id} ${DirectiveType[d.type]} ${d.reason}`));
            return true;
          },
        };
        let after = "";
        do {
          const page = await reconcilePage(deps(publisher), { at: now, afterDeploymentId: after, pageSize: 7, dryRun: false, sweepId: "sweep-1", call });
          expect(page.conflicts).toBe(0);
          applied.push(...page.transitions.map(({ deploymentId, transition }) => `${deploymentId} ${label(transition)}`));
          after = page.nextAfterDeploymentId;
        } while (after);
        expect(applied).toEqual([...expected].map(([id, e]) => `${id} ${e.label}`));

        const states = await rawQuery<{ id: string; state: string; lock_reason: string | null; version: number | string }>(
          opts,
          "select id, state, lock_reason, version from deployment order by id",
        );
        for (const [i, s] of states.entries()) {
          const derived = deriveState(factsOf(rowOf(rows[i]!)), t, DEFAULT_SETTINGS);
          expect({ state: s.state, lockReason: s.lock_reason }).toEqual(derived);
          expect(Number(s.version)).toBe(expected.has(s.id) ? 2 : 1);
        }
        // The page's events as the relay ships them: each outbox row expanded (a run per kind).
        const stored = await rawQuery<{ id: string; action: string; payload: string }>(opts, "select id, action, payload from outbox_event order by seq");
        const events = stored.flatMap((row) => outboxRowTexts(row).map((text, i) => ({ row, first: i === 0, text, decoded: fromJsonString(AuditEventSchema, text) })));
        expect(events).toHaveLength(expected.size);
        for (const e of events) {
          const want = expected.get(e.decoded.resource!.id)!;
          // A row's id is its (first) event's id, its action the events' action.
          if (e.first) expect(e.decoded.id).toBe(e.row.id);
          expect(e.row.action).toBe(want.event.action);
          expect({ ...e.decoded, id: "" }).toEqual({ ...want.event, id: "" });
          // Byte for byte the text one row per event held: the encoder's JSON of the same event.
          expect(e.text).toBe(toJsonString(AuditEventSchema, { ...want.event, id: e.decoded.id }));
        }
        expect(new Set(events.map((e) => e.decoded.id)).size).toBe(events.length);
        const directives = await rawQuery<{ id: string; deployment_id: string; type: string; payload: string }>(opts, "select id, deployment_id, type, payload from directive");
        expect(directives.map((d) => `${d.deployment_id} ${d.type}`).sort()).toEqual(
          [...expected].flatMap(([id, e]) => e.directives.map((d) => `${id} ${d}`)).sort(),
        );
        for (const d of directives) expect(JSON.parse(d.payload)).toMatchObject({ reason: expect.any(String) });
        expect(pushed.sort()).toEqual(directives.map((d) => `${d.deployment_id} ${d.id} ${d.type} ${(JSON.parse(d.payload) as { reason: string }).reason}`).sort());

        // Replaying the sweep changes nothing.
        const again = await reconcilePage(deps(), { at: now, afterDeploymentId: "", pageSize: 5_000, dryRun: false, sweepId: "sweep-2", call });
        expect(again.transitions).toEqual([]);
        expect((await rawQuery<{ payload: string }>(opts, "select payload from outbox_event")).flatMap(outboxRowTexts)).toHaveLength(expected.size);
      }),
      { numRuns: 15 },
    );
  });

  it("a counts-only run applies the same transitions, tallying per kind what it does not list", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(noLease, { minLength: 1, maxLength: 30 }), async (rows) => {
        await seed(rows);
        const expected = new Map<string, number>();
        const withDirective: string[] = [];
        for (const [i, r] of rows.entries()) {
          const row = rowOf(r);
          const tr = transitionOf(storedStateOf(row), deriveState(factsOf(row), t, DEFAULT_SETTINGS));
          if (!tr) continue;
          expected.set(label(tr), (expected.get(label(tr)) ?? 0) + 1);
          if (directivesFor(tr).length > 0) withDirective.push(`${idOf(i)} ${label(tr)}`);
        }
        const counted = new Map<string, number>();
        const listed: string[] = [];
        let after = "";
        do {
          const page = await reconcilePage(deps(), { at: now, afterDeploymentId: after, pageSize: 7, dryRun: false, sweepId: "sweep-1", call, countsOnly: true });
          for (const { deploymentId, transition } of page.transitions) {
            listed.push(`${deploymentId} ${label(transition)}`);
            counted.set(label(transition), (counted.get(label(transition)) ?? 0) + 1);
          }
          for (const { transition, count } of page.tallied) counted.set(label(transition), (counted.get(label(transition)) ?? 0) + count);
          after = page.nextAfterDeploymentId;
        } while (after);
        expect(counted).toEqual(expected);
        // Only the rows with a directive to push are listed (no conflicts, no lease kinds here).
        expect(listed.sort()).toEqual(withDirective.sort());
        const events = (await rawQuery<{ payload: string }>(opts, "select payload from outbox_event")).flatMap(outboxRowTexts);
        expect(events).toHaveLength([...expected.values()].reduce((n, c) => n + c, 0));
      }),
      { numRuns: 15 },
    );
  });

  it("a rendered template is byte for byte the event the encoder writes, for every kind", () => {
    const at = new Date("2026-11-26T12:34:56.789Z");
    const templates = createTransitionTemplates({ at, sweepId: "0190aaaa-0000-7000-8000-000000000001", call });
    expect(templates.length).toBeGreaterThan(20);
    const deploymentId = "0190bbbb-0000-7000-8000-000000000002";
    const run = uuidv7Run(at.getTime());
    for (const [i, tpl] of templates.entries()) {
      const eventId = `${run.prefix}${(run.base + i + 1).toString(16).padStart(12, "0")}`;
      expect(eventId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      const payload = tpl.parts[0] + eventId + tpl.parts[1] + deploymentId + tpl.parts[2];
      const decoded = fromJsonString(AuditEventSchema, payload);
      const to = { state: tpl.toState, lockReason: tpl.toLockReason } as DerivedState;
      const from = decoded.details!.from as string;
      const transition = { from: { state: from, lockReason: (decoded.details!.fromLockReason as string | undefined) ?? null } as DerivedState, to };
      expect(codeOfState(transition.from)).toBe(tpl.from);
      expect(codeOfState(to)).toBe(tpl.to);
      const directives = directivesFor(transition);
      expect(tpl.directive).toBe(directives[0] ?? null);
      const direct = newAuditEvent({
        ...transitionAudit(deploymentId, transition, directives, "0190aaaa-0000-7000-8000-000000000001"),
        actor: call.actor,
        outcome: "success",
        requestId: call.requestId,
        now: at,
      });
      direct.id = eventId;
      expect(payload).toBe(toJsonString(AuditEventSchema, direct));
    }
  });
});
