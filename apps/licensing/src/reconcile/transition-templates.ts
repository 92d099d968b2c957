/**
 * What the database needs to write a page's transitions by itself: for every kind of transition
 * (stored state → derived state) that needs no signature, its target columns, whether the
 * compare-and-set must pin `last_seen_at`, its audit action, its audit event as a JSON template
 * and its directive — all decided by the domain (`auditActionFor`, `directivesFor`) and encoded by
 * the real `newAuditEvent` + protobuf JSON encoder, ONCE per kind and page rather than per row.
 * A row's event is then `p0 ‖ event id ‖ p1 ‖ deployment id ‖ p2`: byte for byte what
 * `recordAudit` stores (both ids are UUIDs, nothing to escape). The page stores each kind's
 * events as one outbox row, an `EventRun` of these parts (@lcp/persistence), which the relay
 * concatenates when it ships them.
 *
 * Kinds whose directives carry a new lease (→ ACTIVE or → SUSPENDED of a bound box) have no
 * template: a lease needs a signature from signing-keys, so those rows take the one-deployment path.
 */
import { toJsonString } from "@bufbuild/protobuf";
import { auditActionFor, directivesFor, type DerivedState, type StateDirective, type Transition } from "@lcp/domain";
import { newAuditEvent } from "@lcp/persistence";
import { AuditEventSchema } from "@lcp/proto/audit/v1/audit_service_pb";
import { v7 as uuidv7 } from "uuid";
import type { CallContext } from "../core/audit.js";
import { ALL_STATES, codeOfState, type StateCode } from "./derivation-sql.js";

/** One kind of transition the database applies by itself. */
export interface TransitionTemplate {
  from: StateCode;
  to: StateCode;
  toState: string;
  toLockReason: string | null;
  /** Whether the target depends on `last_seen_at` (so the compare-and-set pins it). */
  pin: boolean;
  action: string;
  /** The audit event's JSON around its two ids: p0 ‖ event id ‖ p1 ‖ deployment id ‖ p2. */
  parts: [string, string, string];
  /** The one directive for the box (LOCK), or null. */
  directive: StateDirective | null;
  /** The directive's payload JSON. */
  directivePayload: string | null;
}

// The same reasons the one-deployment path gives (core/deployment-change.ts) for the directives
// written here (LOCK only: the others need a lease).
const DIRECTIVE_REASONS: Record<string, string> = {
  REVOKED: "the licence was revoked",
  EXPIRED: "the licence term has ended",
  OFFLINE: "offline longer than the grace window",
  PENDING: "the licence was moved to another box",
};

/**
 * Whether the derived state was decided by `last_seen_at`: revocation, expiry and an unbound
 * licence outrank it (deriveState's order); every other state depends on how long the box was silent.
 */
export function dependsOnLastSeen(derived: DerivedState): boolean {
  if (derived.state === "PENDING") return false;
  return !(derived.state === "LOCKED" && (derived.lockReason === "REVOKED" || derived.lockReason === "EXPIRED"));
}

/** The audit spec of a sweep transition (the one-deployment path records the same). */
export function transitionAudit(deploymentId: string, transition: Transition, directives: StateDirective[], sweepId: string) {
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

// Sentinels the encoder writes where the real ids go; both are valid UUIDs, as the real ones are.
const EVENT_ID = "00000000-0000-7000-8000-0000000e7e17";
const RESOURCE_ID = "00000000-0000-7000-8000-00000000de91";

/** What every event of a page shares. */
export interface TemplateInput {
  at: Date;
  sweepId: string;
  call: CallContext;
}

/**
 * The templates of every transition kind the database may apply by itself, for one page; with
 * `only`, of just the kinds (stored code, derived code) it admits.
 */
export function createTransitionTemplates(input: TemplateInput, only?: (from: StateCode, to: StateCode) => boolean): TransitionTemplate[] {
  const templates: TransitionTemplate[] = [];
  for (const { code: fromCode, state: from } of ALL_STATES) {
    for (const { code: toCode, state: to } of ALL_STATES) {
      if (fromCode === toCode || (only && !only(fromCode, toCode))) continue;
      const transition: Transition = { from, to };
      const directives = directivesFor(transition);
      if (directives.includes("RENEW_LEASE")) continue;
      if (directives.length > 1) throw new Error(`reconcile: ${from.state}→${to.state} has several directives and no lease; give it a template shape`);
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
      const [p0, rest, ...more] = json.split(EVENT_ID);
      const [p1, p2, ...more2] = (rest ?? "").split(RESOURCE_ID);
      // protobuf JSON writes fields in field-number order: id first, the resource later, each once.
      if (p0 === undefined || p1 === undefined || p2 === undefined || more.length > 0 || more2.length > 0) {
        throw new Error("reconcile: the audit event's JSON does not have the id-then-resource shape the templates assume");
      }
      const directive = directives[0] ?? null;
      templates.push({
        from: codeOfState(from),
        to: codeOfState(to),
        toState: to.state,
        toLockReason: to.lockReason,
        pin: dependsOnLastSeen(to),
        action: spec.action,
        parts: [p0, p1, p2],
        directive,
        directivePayload: directive ? JSON.stringify({ reason: DIRECTIVE_REASONS[to.lockReason ?? to.state] ?? to.state }) : null,
      });
    }
  }
  return templates;
}

/**
 * A run of UUIDv7s for one statement: the first 24 characters of a v7 at `msecs` (time, version,
 * random bits, variant) and a random 47-bit start for the last 48 bits, which SQL counts up by
 * row number — RFC 9562's monotonic-counter method, so the ids of a page are unique and ordered,
 * and two pages collide only if 73 random bits do.
 */
export function uuidv7Run(msecs: number): { prefix: string; base: number } {
  const sample = uuidv7({ msecs });
  return { prefix: sample.slice(0, 24), base: parseInt(sample.slice(24), 16) % 2 ** 47 };
}
