/**
 * Reconcile lets SQL pick the candidate rows of a page (deriveState written as SQL, compared with
 * the stored state) and renders its audit events from per-transition templates. Both are only
 * shortcuts: here random facts — crowded at every boundary of the derivation — prove the SQL never
 * misses a row the domain would move (a dry run plans exactly the domain's transitions), on both
 * drivers, and a rendered event decodes to the event `newAuditEvent` builds.
 */
import { fromJsonString } from "@bufbuild/protobuf";
import { DAY_MS, deriveState, DEFAULT_SETTINGS, DEPLOYMENT_STATES, directivesFor, LOCK_REASONS, transitionOf, type DerivedState } from "@lcp/domain";
import { createOrm, newAuditEvent, type Database } from "@lcp/persistence";
import { AuditEventSchema } from "@lcp/proto/audit/v1/audit_service_pb";
import { createLogger } from "@lcp/rpc";
import { rawQuery, testDatabases, type TestDatabaseOptions } from "@lcp/testing/db";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CallContext } from "../src/core/audit.js";
import { noopDirectivePublisher } from "../src/core/directive-publisher.js";
import type { CoreDeps } from "../src/core/deployment-change.js";
import { createEventTemplates, reconcilePage } from "../src/reconcile/reconcile-page.js";
import { factsOf, storedStateOf } from "../src/storage/repository.js";
import type { DeploymentRow } from "../src/storage/entities.js";
import { entities, migrations } from "../src/storage/schema.js";

const call: CallContext = { actor: { kind: "service", id: "fleet-sweep" }, requestId: "req-1" };
const { heartbeatTimeoutMs: TIMEOUT, graceWindowMs: GRACE } = DEFAULT_SETTINGS;

/** An offset crowded at the boundaries the derivation turns on. */
const around = (edges: number[]) => fc.oneof(fc.constantFrom(...edges.flatMap((e) => [e - 1, e, e + 1])), fc.integer({ min: 0, max: 2 * GRACE }));
const storedArb: fc.Arbitrary<DerivedState> = fc.oneof(
  fc.constantFrom(...DEPLOYMENT_STATES.filter((s) => s !== "LOCKED")).map((state) => ({ state, lockReason: null })),
  fc.constantFrom(...LOCK_REASONS).map((lockReason) => ({ state: "LOCKED" as const, lockReason })),
);
const rowArb = fc.record({
  revoked: fc.boolean(),
  expiresIn: fc.option(fc.oneof(fc.constantFrom(-1, 0, 1), fc.integer({ min: -DAY_MS, max: 365 * DAY_MS })), { nil: null }),
  activated: fc.boolean(),
  bound: fc.boolean(),
  silentFor: fc.option(around([0, TIMEOUT, GRACE]), { nil: null }),
  activatedAgo: around([TIMEOUT, GRACE]),
  subscriptionInvalid: fc.boolean(),
  stored: storedArb,
});

describe.each(testDatabases())("reconcile shortcuts ($name)", (tdb) => {
  let db: Database;
  let opts: TestDatabaseOptions;
  beforeAll(async () => {
    opts = tdb.options("licensing");
    db = await createOrm({ ...opts, entities, migrations, logger: createLogger("test", "silent") });
  });
  afterAll(async () => {
    await db.close();
    await opts.cleanup();
  });

  it("the SQL candidates never miss a transition the domain derives, at every boundary", async () => {
    const pg = Boolean(opts.databaseUrl);
    const date = (ms: number | null) => (ms === null ? null : pg ? new Date(ms).toISOString() : ms);
    const p = (n: number) => (pg ? `$${n}` : "?");
    const now = new Date();
    const deps: CoreDeps = {
      db,
      now: () => now,
      signer: { sign: () => Promise.reject(new Error("a dry run signs nothing")) },
      publisher: noopDirectivePublisher,
      log: createLogger("test", "silent"),
    };
    const t = now.getTime();
    await fc.assert(
      fc.asyncProperty(fc.array(rowArb, { minLength: 1, maxLength: 40 }), async (rows) => {
        await rawQuery(opts, "delete from deployment");
        const expected: string[] = [];
        for (const [i, r] of rows.entries()) {
          const id = `00000000-0000-7000-8000-${String(i).padStart(12, "0")}`;
          const values = [
            id,
            r.subscriptionInvalid ? "INVALID" : "VALID",
            date(r.revoked ? t - 1_000 : null),
            date(r.expiresIn === null ? null : t + r.expiresIn),
            date(r.activated ? t - r.activatedAgo : null),
            r.bound ? "a".repeat(64) : null,
            date(r.silentFor === null ? null : t - r.silentFor),
            r.stored.state,
            r.stored.lockReason,
            date(t),
            date(t),
            date(t),
          ];
          await rawQuery(
            opts,
            `insert into deployment (id, name, customer, kind, subscription_status, license_revoked_at, license_expires_at, activated_at, fingerprint_hash, last_seen_at, state, lock_reason, state_changed_at, version, created_at, updated_at)
             values (${p(1)}, 'n', 'c', 'ON_PREM', ${p(2)}, ${p(3)}, ${p(4)}, ${p(5)}, ${p(6)}, ${p(7)}, ${p(8)}, ${p(9)}, ${p(10)}, 1, ${p(11)}, ${p(12)})`,
            values,
          );
          const row = {
            licenseRevokedAt: r.revoked ? new Date(t - 1_000) : null,
            licenseExpiresAt: r.expiresIn === null ? null : new Date(t + r.expiresIn),
            activatedAt: r.activated ? new Date(t - r.activatedAgo) : null,
            fingerprintHash: r.bound ? "a".repeat(64) : null,
            lastSeenAt: r.silentFor === null ? null : new Date(t - r.silentFor),
            subscriptionStatus: r.subscriptionInvalid ? "INVALID" : "VALID",
            state: r.stored.state,
            lockReason: r.stored.lockReason,
          } as DeploymentRow;
          const tr = transitionOf(storedStateOf(row), deriveState(factsOf(row), t, DEFAULT_SETTINGS));
          if (tr) expected.push(`${id} ${tr.from.state}/${tr.from.lockReason}>${tr.to.state}/${tr.to.lockReason}`);
        }
        const page = await reconcilePage(deps, { at: now, afterDeploymentId: "", pageSize: 5_000, dryRun: true, sweepId: "s", call });
        expect(page.examined).toBe(rows.length);
        expect(page.nextAfterDeploymentId).toBe("");
        const planned = page.transitions.map(
          ({ deploymentId, transition: tr }) => `${deploymentId} ${tr.from.state}/${tr.from.lockReason}>${tr.to.state}/${tr.to.lockReason}`,
        );
        expect(planned).toEqual(expected);
      }),
      { numRuns: 25 },
    );
  });

  it("a rendered audit event decodes to the event newAuditEvent builds", () => {
    const at = new Date("2026-11-26T12:34:56.789Z");
    const templates = createEventTemplates({ at, sweepId: "0190aaaa-0000-7000-8000-000000000001", call });
    const deploymentId = "0190bbbb-0000-7000-8000-000000000002";
    for (const [from, to] of [
      [{ state: "ACTIVE", lockReason: null }, { state: "GRACE", lockReason: null }],
      [{ state: "GRACE", lockReason: null }, { state: "LOCKED", lockReason: "OFFLINE" }],
      [{ state: "ACTIVE", lockReason: null }, { state: "LOCKED", lockReason: "EXPIRED" }],
    ] as const) {
      const transition = { from, to };
      const directives = directivesFor(transition);
      const rendered = templates.render(deploymentId, transition, directives);
      const again = templates.render(deploymentId, transition, directives);
      expect(again.id).not.toBe(rendered.id);
      const decoded = fromJsonString(AuditEventSchema, rendered.payload);
      const direct = newAuditEvent({
        action: rendered.action,
        actor: call.actor,
        resource: { type: "deployment", id: deploymentId },
        outcome: "success",
        requestId: call.requestId,
        details: {
          from: from.state,
          to: to.state,
          ...(to.lockReason ? { lockReason: to.lockReason } : {}),
          directives,
          sweepId: "0190aaaa-0000-7000-8000-000000000001",
        },
        now: at,
      });
      expect(decoded.id).toBe(rendered.id);
      expect({ ...decoded, id: "" }).toEqual({ ...direct, id: "" });
    }
  });
});
