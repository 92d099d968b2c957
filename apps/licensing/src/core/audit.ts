/**
 * Who did what, for the audit trail: the actor of a call, and the helpers that write licensing's
 * events into its outbox (in the change's transaction) or, for refusals, on their own.
 */
import type { AuditAction, Refusal } from "@lcp/domain";
import { newAuditEvent, recordAudit, writeAuditNow, type Database } from "@lcp/persistence";
import {
  auditActorOf,
  coalesceRepeats,
  DEFAULT_DENIED_AUDIT_WINDOW_MS,
  principalKey,
  repeatedDetails,
  requestIdKey,
  type CoalescedRepeats,
  type DeniedRepeats,
  type Logger,
  type Principal,
} from "@lcp/rpc";
import type { HandlerContext } from "@connectrpc/connect";
import type { EntityManager } from "@mikro-orm/knex";

/** The audit actor of a call. */
export interface AuditActor {
  kind: "admin" | "service" | "appliance" | "system" | "anonymous";
  id: string;
  roles?: readonly string[];
}

/** What every change needs to know about the call that makes it. */
export interface CallContext {
  actor: AuditActor;
  requestId: string;
}

/** The audit actor for a principal. */
export function actorOf(principal: Principal): AuditActor {
  return auditActorOf(principal);
}

/** The call context of a handler invocation (principal and request id set by the rpc interceptor). */
export function callContextOf(ctx: HandlerContext): CallContext {
  return { actor: actorOf(ctx.values.get(principalKey)), requestId: ctx.values.get(requestIdKey) };
}

/** One audit event to write, before the envelope (id, time, actor) is added. */
export interface AuditSpec {
  action: AuditAction;
  resource: { type: "deployment" | "license" | "settings"; id: string };
  outcome?: "success" | "denied" | "failure";
  details?: Record<string, unknown>;
}

/** Adds an event to the outbox in the caller's transaction (commits or rolls back with the change). */
export function recordEvent(em: EntityManager, call: CallContext, spec: AuditSpec, now: Date): void {
  recordAudit(
    em,
    newAuditEvent({
      action: spec.action,
      actor: call.actor,
      resource: spec.resource,
      outcome: spec.outcome ?? "success",
      requestId: call.requestId,
      details: spec.details,
      now,
    }),
  );
}

/**
 * Records a refusal (outcome DENIED) in its own transaction: the refused change rolled back, or
 * never started, so there is nothing to share a transaction with. A failure to write it is
 * logged by the caller, never turned into a different answer.
 */
export async function recordDenied(
  db: Database,
  call: CallContext,
  spec: Omit<AuditSpec, "outcome">,
  refusal: { code: Refusal["code"] | string; message: string },
  now: Date,
  repeated?: DeniedRepeats,
): Promise<void> {
  await writeAuditNow(
    db,
    newAuditEvent({
      action: spec.action,
      actor: call.actor,
      resource: spec.resource,
      outcome: "denied",
      requestId: call.requestId,
      details: { ...spec.details, code: refusal.code, message: refusal.message, ...repeatedDetails({ repeated }) },
      now,
    }),
  );
}

/** One refused command, as {@link createRefusalAudit} records it. */
export interface RefusedCall {
  call: CallContext;
  spec: Omit<AuditSpec, "outcome">;
  refusal: { code: string; message: string };
}

/**
 * The handlers' refusals (outcome DENIED), coalesced exactly like the server's `authz.denied`
 * events and with the same window (DENIED_AUDIT_WINDOW): a refusal costs nothing to provoke —
 * Activate is public — so each one must not be a row of its own. The first refusal of a kind (the
 * same actor, action, resource, details, code and message) is written in full before the caller is
 * answered; its repeats within the window become one more event carrying their count.
 */
export function createRefusalAudit(options: { db: Database; now: () => Date; log: Logger; windowMs?: number | undefined }): CoalescedRepeats<RefusedCall> {
  const { db, now, log } = options;
  return coalesceRepeats<RefusedCall>((r, repeated) => recordDenied(db, r.call, r.spec, r.refusal, now(), repeated), {
    windowMs: options.windowMs ?? DEFAULT_DENIED_AUDIT_WINDOW_MS,
    logger: log,
    kindOf: (r) =>
      // The details are part of the kind: two boxes refused the same licence (another fingerprint
      // hash) are two facts an investigator needs, while one box retrying in a loop is one. The
      // cap on kinds bounds what varying the details can cost.
      [r.call.actor.kind, r.call.actor.id, r.spec.action, r.spec.resource.type, r.spec.resource.id, r.refusal.code, r.refusal.message, JSON.stringify(r.spec.details ?? {})].join("\u0000"),
    overflowKindOf: (r) => `${r.spec.action}\u0000${r.refusal.code}`,
    describe: (r) => ({ action: r.spec.action, code: r.refusal.code }),
  });
}
