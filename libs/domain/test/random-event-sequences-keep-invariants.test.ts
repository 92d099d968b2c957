// Property tests (docs/design.md §5): random event sequences through the domain with a simulated
// store, checking the invariants the whole system relies on.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  INITIAL_FACTS,
  activate,
  auditActionFor,
  deriveState,
  directivesFor,
  heartbeat,
  isAuditAction,
  issueLicense,
  leaseStateFor,
  needsNewLease,
  nextLeaseSeq,
  rebind,
  revoke,
  sameDerivedState,
  setConnectivity,
  setSubscription,
  transitionOf,
  validateSettings,
  type DeploymentFacts,
  type DerivedState,
  type IssuedLease,
  type Settings,
} from "../src/index.js";
import { S, T0 } from "./fixtures.js";

const POOL = ["fp-a", "fp-b", "fp-c"] as const;
const fp = fc.constantFrom(...POOL);

type Event =
  | { kind: "activate"; fp: string }
  | { kind: "heartbeat"; fp: string }
  | { kind: "subscription"; valid: boolean }
  | { kind: "connectivity"; airGapped: boolean }
  | { kind: "revoke" }
  | { kind: "rebind"; fp: string | null }
  | { kind: "advance"; ms: number }
  | { kind: "issue"; termMs: number }
  | { kind: "settings"; settings: Settings }
  | { kind: "sweep" };

// Seconds-scale settings that respect every relation (tests shrink settings like this).
const settingsArb: fc.Arbitrary<Settings> = fc
  .integer({ min: 3, max: 30 })
  .chain((grace) =>
    fc.integer({ min: 1, max: grace - 2 }).chain((interval) =>
      fc.record({
        graceWindowMs: fc.constant(grace * S),
        heartbeatIntervalMs: fc.constant(interval * S),
        heartbeatTimeoutMs: fc.integer({ min: interval + 1, max: grace - 1 }).map((x) => x * S),
        leaseRenewAfterMs: fc.integer({ min: 1, max: grace - 1 }).map((x) => x * S),
        maxClockSkewMs: fc.integer({ min: 0, max: 5 }).map((x) => x * S),
        sweepIntervalMs: fc.integer({ min: 1, max: 5 }).map((x) => x * S),
      }),
    ),
  )
  // Shorter or longer than the grace window: the air-gapped lease is independent of it.
  .chain((s) =>
    fc.integer({ min: 2, max: 60 }).chain((lease) =>
      fc.integer({ min: 1, max: lease - 1 }).map((renew) => ({ ...s, airGappedLeaseMs: lease * S, airGappedRenewAfterMs: renew * S })),
    ),
  );

const eventArb: fc.Arbitrary<Event> = fc.oneof(
  { weight: 4, arbitrary: fp.map((f) => ({ kind: "activate" as const, fp: f })) },
  { weight: 6, arbitrary: fp.map((f) => ({ kind: "heartbeat" as const, fp: f })) },
  { weight: 2, arbitrary: fc.boolean().map((valid) => ({ kind: "subscription" as const, valid })) },
  { weight: 2, arbitrary: fc.boolean().map((airGapped) => ({ kind: "connectivity" as const, airGapped })) },
  { weight: 1, arbitrary: fc.constant({ kind: "revoke" as const }) },
  { weight: 2, arbitrary: fc.option(fp, { nil: null }).map((f) => ({ kind: "rebind" as const, fp: f })) },
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 25 * S }).map((ms) => ({ kind: "advance" as const, ms })) },
  { weight: 1, arbitrary: fc.integer({ min: 1 * S, max: 200 * S }).map((termMs) => ({ kind: "issue" as const, termMs })) },
  { weight: 1, arbitrary: settingsArb.map((settings) => ({ kind: "settings" as const, settings })) },
  { weight: 2, arbitrary: fc.constant({ kind: "sweep" as const }) },
);

/** The simulated store: what a licensing replica keeps for one deployment. */
interface Store {
  facts: DeploymentFacts;
  stored: DerivedState;
  settings: Settings;
  now: number;
  lease: IssuedLease | null;
  revoked: boolean;
  seqs: number[];
}

function reconcile(store: Store, boxContact: boolean): void {
  const derived = deriveState(store.facts, store.now, store.settings);
  const t = transitionOf(store.stored, derived);
  let pushRenew = false;
  if (t) {
    const directives = directivesFor(t);
    expect(isAuditAction(auditActionFor(t))).toBe(true);
    if (t.to.state === "LOCKED") expect(directives).toEqual(t.to.lockReason === "OFFLINE" ? [] : ["LOCK"]);
    // A revoked deployment is absorbing: nothing ever moves it out of LOCKED(REVOKED).
    expect(t.from.lockReason === "REVOKED").toBe(false);
    pushRenew = directives.includes("RENEW_LEASE");
    store.stored = t.to;
  }
  // (f) an air-gapped deployment is never GRACE: its health is its lease, not its heartbeats.
  if (store.facts.airGapped) expect(store.stored.state).not.toBe("GRACE");
  // (c) the stored state always equals the derivation of the facts.
  expect(sameDerivedState(store.stored, deriveState(store.facts, store.now, store.settings))).toBe(true);
  // (d) replaying the sweep with no new event changes nothing.
  expect(transitionOf(store.stored, deriveState(store.facts, store.now, store.settings))).toBeNull();

  // Leases are signed when the box is in contact or a RENEW_LEASE is pushed, and only when needed.
  const derivedLeaseState = leaseStateFor(store.stored);
  if ((boxContact || pushRenew) && needsNewLease({ lastLease: store.lease, derivedLeaseState, now: store.now, settings: store.settings })) {
    expect(derivedLeaseState).not.toBeNull();
    const seq = nextLeaseSeq(store.lease?.seq ?? null);
    // (e) lease seq strictly increases.
    if (store.lease) expect(seq).toBeGreaterThan(store.lease.seq);
    store.lease = { issuedAt: store.now, seq, state: derivedLeaseState! };
    store.seqs.push(seq);
  }
}

function apply(store: Store, e: Event): void {
  let contact = false;
  switch (e.kind) {
    case "activate": {
      const v = activate(store.facts, e.fp, store.now);
      // (a) a revoked licence never activates again, whoever asks.
      if (store.revoked) expect(v).toMatchObject({ ok: false, code: "LICENSE_REVOKED" });
      if (v.ok) {
        store.facts = v.facts;
        contact = true;
      }
      break;
    }
    case "heartbeat": {
      const v = heartbeat(store.facts, e.fp, store.now);
      if (v.ok) {
        store.facts = v.facts;
        contact = true;
      }
      break;
    }
    case "subscription": {
      const v = setSubscription(store.facts, e.valid);
      if (v.ok) store.facts = v.facts;
      break;
    }
    case "connectivity": {
      const v = setConnectivity(store.facts, e.airGapped);
      expect(v.ok && v.changed).toBe(store.facts.airGapped !== e.airGapped);
      // Switching changes nothing but connectivity: the binding and last seen carry on.
      if (v.ok) {
        expect({ ...v.facts, airGapped: store.facts.airGapped }).toEqual(store.facts);
        store.facts = v.facts;
      }
      break;
    }
    case "revoke": {
      const v = revoke(store.facts, store.now, "reported stolen");
      expect(v.ok).toBe(!store.revoked);
      if (v.ok) {
        store.facts = v.facts;
        store.revoked = true;
      }
      break;
    }
    case "rebind": {
      const v = rebind(store.facts, e.fp, "replacement hardware");
      if (store.revoked) expect(v).toMatchObject({ ok: false, code: "LICENSE_REVOKED" });
      if (v.ok) store.facts = v.facts;
      break;
    }
    case "advance":
      store.now += e.ms;
      break;
    case "issue": {
      const v = issueLicense(store.facts, store.now + e.termMs, store.now);
      if (v.ok) store.facts = v.facts;
      break;
    }
    case "settings":
      expect(validateSettings(e.settings).ok).toBe(true);
      store.settings = e.settings;
      break;
    case "sweep":
      break;
  }
  reconcile(store, contact);
  if (contact) {
    // A box we just heard from is, by derivation, running: ACTIVE or SUSPENDED, never GRACE or LOCKED.
    expect(["ACTIVE", "SUSPENDED"]).toContain(store.stored.state);
  }
}

function checkBinding(store: Store): void {
  // (b) at most one fingerprint is bound: at most one box of the pool may heartbeat, and once
  // bound only the bound box may activate.
  const beating = POOL.filter((f) => heartbeat(store.facts, f, store.now).ok);
  expect(beating.length).toBeLessThanOrEqual(1);
  const bound = store.facts.boundFingerprintHash;
  if (bound !== null) {
    for (const f of POOL) if (f !== bound) expect(activate(store.facts, f, store.now).ok).toBe(false);
    if (beating.length === 1) expect(beating[0]).toBe(bound);
  }
  if (store.revoked) {
    expect(store.stored).toEqual({ state: "LOCKED", lockReason: "REVOKED" });
    for (const f of POOL) expect(activate(store.facts, f, store.now)).toMatchObject({ ok: false, code: "LICENSE_REVOKED" });
  }
}

describe("random event sequences", () => {
  it("keep the domain invariants (revocation final, one binding, stored = derived, idempotent sweep, increasing lease seq, air-gapped never GRACE)", () => {
    fc.assert(
      fc.property(
        settingsArb,
        fc.integer({ min: 5 * S, max: 300 * S }),
        fc.boolean(),
        fc.array(eventArb, { minLength: 1, maxLength: 80 }),
        (settings, termMs, airGapped, events) => {
          const facts: DeploymentFacts = { ...INITIAL_FACTS, licenseExpiresAt: T0 + termMs, airGapped };
          const store: Store = {
            facts,
            stored: deriveState(facts, T0, settings),
            settings,
            now: T0,
            lease: null,
            revoked: false,
            seqs: [],
          };
          for (const e of events) {
            apply(store, e);
            checkBinding(store);
          }
          for (let i = 1; i < store.seqs.length; i++) expect(store.seqs[i]!).toBeGreaterThan(store.seqs[i - 1]!);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("a deployment with no licence stays PENDING whatever boxes try", () => {
    fc.assert(
      fc.property(settingsArb, fc.array(fc.tuple(fp, fc.integer({ min: 0, max: 20 * S })), { maxLength: 20 }), (settings, tries) => {
        let now = T0;
        for (const [f, dt] of tries) {
          now += dt;
          expect(activate(INITIAL_FACTS, f, now).ok).toBe(false);
          expect(heartbeat(INITIAL_FACTS, f, now).ok).toBe(false);
          expect(deriveState(INITIAL_FACTS, now, settings).state).toBe("PENDING");
        }
      }),
    );
  });

  it("the derivation is monotone in silence: once GRACE or LOCKED(OFFLINE), more silence never makes it ACTIVE", () => {
    fc.assert(
      fc.property(settingsArb, fc.boolean(), fc.integer({ min: 0, max: 60 * S }), fc.integer({ min: 0, max: 60 * S }), (settings, airGapped, a, b) => {
        const facts: DeploymentFacts = {
          ...INITIAL_FACTS,
          licenseExpiresAt: T0 + 10_000 * S,
          activatedAt: T0,
          boundFingerprintHash: "fp-a",
          lastSeenAt: T0,
          airGapped,
        };
        const rank = { ACTIVE: 0, GRACE: 1, LOCKED: 2 } as Record<string, number>;
        const first = deriveState(facts, T0 + a, settings).state;
        const later = deriveState(facts, T0 + a + b, settings).state;
        expect(rank[later]!).toBeGreaterThanOrEqual(rank[first]!);
        // An air-gapped box goes straight from ACTIVE to LOCKED(OFFLINE), exactly past its lease.
        if (airGapped) {
          expect(first).not.toBe("GRACE");
          expect(first).toBe(a > settings.airGappedLeaseMs ? "LOCKED" : "ACTIVE");
        }
      }),
    );
  });
});
