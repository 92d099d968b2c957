/**
 * The one way a deployment changes (docs/design.md §5): load its facts, let a domain rule decide the
 * new facts, do any remote work (signing a lease, issuing a certificate) BEFORE the transaction,
 * then in one transaction compare-and-set the deployment on its version, write the licence and
 * any extra rows, derive the state, record the transition, its directives and every audit event
 * in the outbox — and after commit hand the directives to the publisher. A lost compare-and-set
 * re-runs the whole decision on fresh facts, so the loser is judged on what the winner did.
 *
 * Activate, revoke, rebind, issue and subscription changes use it now; the heartbeat (a beat
 * that changes state) and the reconcile sweep (an empty event at `at`) are meant to use it too.
 */
import {
  auditActionFor,
  deriveState,
  directivesFor,
  leaseLifetimeMs,
  leaseStateFor,
  nextLeaseSeq,
  transitionOf,
  type DeploymentFacts,
  type DerivedState,
  type Refusal,
  type Settings,
  type StateDirective,
  type Transition,
} from "@lcp/domain";
import { isSerializationFailure, type Database } from "@lcp/persistence";
import type { Directive } from "@lcp/proto/licensing/v1/types_pb";
import { DomainError, type Logger } from "@lcp/rpc";
import type { EntityManager } from "@mikro-orm/knex";
import { v7 as uuidv7 } from "uuid";
import { directiveToProto, type DirectivePayload } from "../mapping.js";
import { DirectiveEntity, LicenseEntity, type DeploymentRow, type DirectiveRow, type LicenseRow } from "../storage/entities.js";
import {
  compareAndSetDeployment,
  factColumns,
  factsOf,
  loadDeployment,
  loadSettings,
  storedStateOf,
  type DeploymentSnapshot,
  type FactColumns,
} from "../storage/repository.js";
import { recordEvent, type AuditSpec, type CallContext } from "./audit.js";
import type { DirectivePublisher } from "./directive-publisher.js";
import { signLease, type TokenSigner } from "./signer.js";

/** Test-only fault injection, to prove a change and its audit event commit together or not at all. */
export interface FaultInjection {
  /**
   * Runs inside the transaction after the state change is written and before the outbox write;
   * throwing rolls the whole change back.
   */
  afterStateChange?(info: { deploymentId: string | null; action: string }): void | Promise<void>;
}

/** What the core of licensing needs: storage, time, signing, the directive seam, logs. */
export interface CoreDeps {
  db: Database;
  /** Server time; tests inject their own clock. */
  now: () => Date;
  signer: TokenSigner;
  publisher: DirectivePublisher;
  log: Logger;
  faults?: FaultInjection | undefined;
}

/** The facts a decision is made on. */
export interface Loaded extends DeploymentSnapshot {
  facts: DeploymentFacts;
  settings: Settings;
  now: Date;
}

/** What a command decided: the new facts and everything to write with them. */
export interface ChangePlan<P = void> {
  /** The deployment's facts after the event (from a domain rule). */
  facts: DeploymentFacts;
  /** When the facts newly say revoked: the revocation time to store (default now). */
  revokedAt?: Date;
  /** Other deployment columns to write. */
  deployment?: Partial<Pick<DeploymentRow, "subscriptionReason" | "subscriptionChangedAt" | "agentVersion">>;
  /** Other columns of the current licence to write. */
  license?: Partial<Pick<LicenseRow, "revokeReason">>;
  /**
   * A licence to insert and make current (IssueLicense); the previous current licence is marked
   * superseded by it. Its binding and lease columns are filled from the facts.
   */
  newLicense?: LicenseRow;
  /** The command's own audit events (license.revoke, subscription.update …). */
  audit: AuditSpec[];
  /** Extra writes in the transaction, with the result of `prepare` (certificate rows, revocations). */
  write?(em: EntityManager, now: Date, prepared: P): Promise<void>;
  /** Sign a lease for the resulting state even if no directive needs one (activation). */
  issueLease?: boolean;
  /**
   * A lease seq the box says it already holds (a signed renewal request): the new lease's seq is
   * above it even if ours fell behind (a database restored from a backup), or the box would refuse it.
   */
  leaseSeqFloor?: number;
  /** Why, as the box is told in its directives; a default is derived from the transition. */
  directiveReason?: string;
  /** Write nothing when neither the facts nor the derived state change (re-derivation, sweeps). */
  skipIfUnchanged?: boolean;
}

/** A change request: which deployment, and how to decide. */
export interface ChangeRequest<P = void> {
  deploymentId: string;
  call: CallContext;
  /** The action name for fault injection and logs (the refusal audit is the caller's). */
  action: string;
  /** Decide from the loaded facts (pure: it may run more than once). A refusal is thrown as a DomainError. */
  decide(loaded: Loaded): ChangePlan<P> | Refusal;
  /** Remote work once the decision is yes, before the transaction opens (may run more than once). */
  prepare?(loaded: Loaded, plan: ChangePlan<P>): Promise<P>;
  /** Derive at this time instead of the server clock (reconcile's `now`). */
  at?: Date;
  /** Facts the caller already loaded (e.g. for a pre-check before signing): used for the first attempt. */
  initial?: Loaded;
}

/** What a committed change did. */
export interface ChangeResult<P = void> {
  /** The deployment row as committed. */
  deployment: DeploymentRow;
  /** Its current licence as committed (null when none was issued). */
  license: LicenseRow | null;
  derived: DerivedState;
  transition: Transition | null;
  /** The directives written (and handed to the publisher). */
  directives: Directive[];
  /** The lease signed with the change, if any. */
  lease: { token: string; seq: number } | null;
  prepared: P;
  settings: Settings;
  /** False when `skipIfUnchanged` found nothing to write. */
  written: boolean;
}

/** How often a lost compare-and-set is retried before the caller is told to retry (Aborted). */
const MAX_ATTEMPTS = 8;

function isRefusal(value: unknown): value is Refusal {
  return typeof value === "object" && value !== null && (value as { ok?: unknown }).ok === false;
}

function sameFacts(a: DeploymentFacts, b: DeploymentFacts): boolean {
  return (
    a.licenseRevoked === b.licenseRevoked &&
    a.licenseExpiresAt === b.licenseExpiresAt &&
    a.activatedAt === b.activatedAt &&
    a.boundFingerprintHash === b.boundFingerprintHash &&
    a.lastSeenAt === b.lastSeenAt &&
    a.subscriptionValid === b.subscriptionValid &&
    a.airGapped === b.airGapped
  );
}

const DEFAULT_DIRECTIVE_REASONS: Record<string, string> = {
  REVOKED: "the licence was revoked",
  EXPIRED: "the licence term has ended",
  OFFLINE: "offline longer than the grace window",
  PENDING: "the licence was moved to another box",
  SUSPENDED: "the subscription is invalid",
  ACTIVE: "back to normal service",
  GRACE: "offline",
};

function defaultReason(to: DerivedState): string {
  return DEFAULT_DIRECTIVE_REASONS[to.lockReason ?? to.state] ?? to.state;
}

/**
 * Only the fact columns the event changed are written: a column written by someone else meanwhile
 * without a version bump (the heartbeat's batched `last_seen_at`) is then never overwritten with
 * the older value this decision read.
 */
function changedFactColumns(loaded: Loaded, facts: DeploymentFacts, revokedAt: Date | null): Partial<FactColumns> {
  const before = factColumns(loaded.facts, loaded.deployment.licenseRevokedAt ?? null);
  const after = factColumns(facts, revokedAt);
  const changed: Partial<Record<keyof FactColumns, unknown>> = {};
  for (const key of Object.keys(after) as (keyof FactColumns)[]) {
    const a = after[key];
    const b = before[key];
    const same = a instanceof Date && b instanceof Date ? a.getTime() === b.getTime() : a === b;
    if (!same) changed[key] = a;
  }
  return changed as Partial<FactColumns>;
}

/** Loads what a decision about `deploymentId` is made on; NOT_FOUND when there is no such deployment. */
export async function loadForDecision(deps: CoreDeps, deploymentId: string, at?: Date): Promise<Loaded> {
  const em = deps.db.em();
  const now = at ?? deps.now();
  const snapshot = await loadDeployment(em, deploymentId);
  if (!snapshot) throw new DomainError("NOT_FOUND", `deployment ${deploymentId} does not exist`, { deploymentId });
  const settings = await loadSettings(em, now);
  return { ...snapshot, facts: factsOf(snapshot.deployment), settings, now };
}

/**
 * Applies one event to a deployment (see the module comment). Throws a DomainError with the
 * refusal's code when the decision refuses, CONFLICT when it keeps losing the compare-and-set.
 */
export async function applyDeploymentChange<P = void>(deps: CoreDeps, request: ChangeRequest<P>): Promise<ChangeResult<P>> {
  for (let attempt = 1; ; attempt++) {
    const loaded = attempt === 1 && request.initial ? request.initial : await loadForDecision(deps, request.deploymentId, request.at);
    const decision = request.decide(loaded);
    if (isRefusal(decision)) {
      throw new DomainError(decision.code, decision.message, decision.field ? { field: decision.field } : {});
    }
    const plan = decision;
    const { now, settings, deployment } = loaded;
    const derived = deriveState(plan.facts, now.getTime(), settings);
    const transition = transitionOf(storedStateOf(deployment), derived);
    if (plan.skipIfUnchanged && !transition && sameFacts(plan.facts, loaded.facts) && !plan.newLicense && !plan.write) {
      return {
        deployment,
        license: loaded.license,
        derived,
        transition: null,
        directives: [],
        lease: null,
        prepared: undefined as P,
        settings,
        written: false,
      };
    }

    const prepared = request.prepare ? await request.prepare(loaded, plan) : (undefined as P);
    const current = plan.newLicense ?? loaded.license;
    const directiveTypes: StateDirective[] = transition ? directivesFor(transition) : [];
    const leaseState = leaseStateFor(derived);
    const wantLease = plan.issueLease === true || directiveTypes.includes("RENEW_LEASE");
    let lease: { token: string; seq: number } | null = null;
    if (wantLease && leaseState && current && plan.facts.boundFingerprintHash) {
      const seq = nextLeaseSeq(Math.max(current.leaseSeq ?? 0, plan.leaseSeqFloor ?? 0));
      const token = await signLease(deps.signer, {
        licenseId: current.id,
        deploymentId: deployment.id,
        fingerprintHash: plan.facts.boundFingerprintHash,
        status: leaseState,
        seq,
        issuedAt: now,
        // The lease's lifetime: the grace window, or air_gapped_lease for an air-gapped box.
        graceWindowMs: leaseLifetimeMs(plan.facts, settings),
      });
      lease = { token, seq };
    }

    const revokedAt = plan.facts.licenseRevoked ? (deployment.licenseRevokedAt ?? plan.revokedAt ?? now) : null;
    const deploymentPatch = {
      ...changedFactColumns(loaded, plan.facts, revokedAt),
      ...plan.deployment,
      licenseId: current?.id ?? null,
      ...(transition
        ? { state: derived.state, lockReason: derived.lockReason, stateChangedAt: now }
        : {}),
      updatedAt: now,
    };
    // The licence mirrors the facts it owns, so GetLicense and the deployment always agree.
    const licensePatch = current
      ? {
          fingerprintHash: plan.facts.boundFingerprintHash,
          activatedAt: plan.facts.activatedAt === null ? null : new Date(plan.facts.activatedAt),
          revokedAt,
          ...plan.license,
          ...(lease ? { leaseSeq: lease.seq, leaseIssuedAt: now } : {}),
        }
      : undefined;
    const reason = plan.directiveReason ?? defaultReason(derived);
    const directiveRows: DirectiveRow[] = directiveTypes.map((type) => {
      const payload: DirectivePayload = { reason };
      // Every state change carries the lease for the new state when there is one (proto Directive).
      if (lease && type !== "LOCK") payload.leaseToken = lease.token;
      return {
        // uuid's own v7 state is monotonic within the process, so ids order the directives of one
        // deployment (written under its compare-and-set) oldest first: redelivery orders by id.
        id: uuidv7(),
        deploymentId: deployment.id,
        type,
        payload: JSON.stringify(payload),
        createdAt: now,
        ackedAt: null,
      } as DirectiveRow;
    });

    let committed: boolean;
    try {
      committed = await deps.db.transactional(async (em) => {
        if (!(await compareAndSetDeployment(em, deployment.id, deployment.version, deploymentPatch))) return false;
        if (plan.newLicense) {
          if (loaded.license) {
            await em.nativeUpdate(
              LicenseEntity,
              { id: loaded.license.id },
              { supersededAt: now, supersededBy: plan.newLicense.id },
            );
          }
          await em.insert(LicenseEntity, { ...plan.newLicense, ...licensePatch });
        } else if (current && licensePatch) {
          await em.nativeUpdate(LicenseEntity, { id: current.id }, licensePatch);
        }
        await plan.write?.(em, now, prepared);
        if (directiveRows.length > 0) await em.insertMany(DirectiveEntity, directiveRows);
        await deps.faults?.afterStateChange?.({ deploymentId: deployment.id, action: request.action });
        const actions = new Set(plan.audit.map((a) => a.action));
        for (const spec of plan.audit) recordEvent(em, request.call, spec, now);
        if (transition) {
          const action = auditActionFor(transition);
          // The command's own event already says it (activation, rebind): one record, not two.
          if (!actions.has(action)) {
            recordEvent(
              em,
              request.call,
              {
                action,
                resource: { type: "deployment", id: deployment.id },
                details: {
                  from: transition.from.state,
                  to: transition.to.state,
                  ...(transition.from.lockReason ? { fromLockReason: transition.from.lockReason } : {}),
                  ...(transition.to.lockReason ? { lockReason: transition.to.lockReason } : {}),
                  directives: directiveTypes,
                },
              },
              now,
            );
          }
        }
        return true;
      });
    } catch (err) {
      if (isSerializationFailure(err) && attempt < MAX_ATTEMPTS) {
        deps.log.debug({ deploymentId: deployment.id, attempt }, "transaction lost a race, retrying");
        continue;
      }
      throw err;
    }
    if (!committed) {
      if (attempt >= MAX_ATTEMPTS) {
        throw new DomainError("CONFLICT", "the deployment kept changing concurrently; retry the request", {
          deploymentId: deployment.id,
        });
      }
      deps.log.debug({ deploymentId: deployment.id, attempt, action: request.action }, "compare-and-set lost, re-deciding");
      continue;
    }

    const directives = directiveRows.map(directiveToProto);
    if (directives.length > 0) await publishSafely(deps, deployment.id, directives);
    const license: LicenseRow | null = current && licensePatch ? ({ ...current, ...licensePatch } as LicenseRow) : null;
    return {
      deployment: { ...deployment, ...deploymentPatch, version: deployment.version + 1 } as DeploymentRow,
      license,
      derived,
      transition,
      directives,
      lease,
      prepared,
      settings,
      written: true,
    };
  }
}

/** Hands committed directives to the publisher; a failing publisher never fails the committed change. */
export async function publishSafely(deps: CoreDeps, deploymentId: string, directives: readonly Directive[]): Promise<boolean> {
  try {
    return await deps.publisher.publish(deploymentId, directives);
  } catch (err) {
    deps.log.warn({ err, deploymentId }, "directive publisher failed; the box gets the directives when it reconnects");
    return false;
  }
}
