/**
 * One box's heartbeat, as the stream (and the unary SendHeartbeat) handles it (docs/design.md §5, §8):
 *
 * - hello: the licence must belong to the certificate's deployment (else PermissionDenied); the
 *   domain's heartbeat verdict on the deployment's facts decides — a refusal that means "this box
 *   may not run" (revoked, expired, another box bound, unbound by a rebind) pushes LOCK and closes
 *   the stream with the refusal's code; pending directives are redelivered right after.
 * - beat (the hot path): judged on the facts cached with the stream, in memory. A beat that does
 *   not change the derived state only marks the box seen (the coalesced writer stores it within a
 *   second); a beat that does (GRACE / LOCKED(OFFLINE) → ACTIVE) goes through the one change path
 *   synchronously, which records the transition and publishes REACTIVATE + RENEW_LEASE. A lease is
 *   re-signed only when older than lease_renew_after or when its state differs (needsNewLease).
 * - ack / renew_certificate: directive acknowledgements; a CSR answered by RENEW_CERTIFICATE.
 *
 * The cached facts are re-read whenever the hub says the deployment changed (on any replica), and
 * when the hub's periodic batched check finds them behind (`isStale`), so a lost NOTIFY costs at
 * most that period.
 */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import {
  deriveState,
  heartbeat,
  heartbeatRefusalLocksBox,
  leaseStateFor,
  needsNewLease,
  sameDerivedState,
  type DeploymentFacts,
  type DerivedState,
  type DomainCode,
} from "@lcp/domain";
import type { HeartbeatResponseSchema, Hello } from "@lcp/proto/licensing/v1/appliance_service_pb";
import { DirectiveSchema, DirectiveType, type Directive } from "@lcp/proto/licensing/v1/types_pb";
import { assertOwnDeployment, DomainError, lockReasonToProto, stateToProto, type AppliancePrincipal, type Principal } from "@lcp/rpc";
import { decodeJwt } from "jose";
import { v7 as uuidv7 } from "uuid";
import { actorOf, type CallContext } from "../core/audit.js";
import { applyDeploymentChange, loadForDecision, type Loaded } from "../core/deployment-change.js";
import type { LicensingDeps } from "../deps.js";
import { directiveToProto } from "../mapping.js";
import { invalid, requireFingerprintHash, requireId } from "../licensing-service/validate.js";
import { DeploymentEntity, type LicenseRow } from "../storage/entities.js";
import { factsOf, storedStateOf } from "../storage/repository.js";
import { MAX_AGENT_VERSION_LENGTH, MAX_CSR_BYTES } from "../appliance-service/validate.js";
import { ackDirectives, renewLease, storeRenewedCertificate, type CertificateRenewalOutcome } from "./directive-store.js";
import type { HelloReads } from "./hello-reads.js";
import { MAX_REPORTED_KEY_IDS, refreshKeysDirective, sameKeySet, signedByKeyIn } from "./key-set.js";
import type { LastSeenWriter } from "./last-seen-writer.js";
import { RateLimiter } from "./push-queue.js";
import type { HeldStream, PendingDirective, StreamHub } from "./stream-hub.js";

/** What every session shares. */
export interface HeartbeatContext {
  deps: LicensingDeps;
  hub: StreamHub;
  writer: LastSeenWriter;
  /** The hello's reads, batched per event-loop turn (a reconnect storm's hellos share statements). */
  reads: HelloReads;
  limits: HeartbeatLimits;
  /** Counts for /metrics (beats received, directives pushed); no-ops until metrics are registered. */
  counters: HeartbeatCounters;
}

/** What the stream counts for /metrics. */
export interface HeartbeatCounters {
  beat(): void;
  directivePushed(type: string): void;
  /** A certificate renewal ended: recorded, refused (revoked or moved meanwhile) or failed. */
  certificateRenewal(outcome: CertificateRenewalOutcome | "failed"): void;
}

/** Per-stream limits. */
export interface HeartbeatLimits {
  /** Sustained messages per second a stream may send (default 10). */
  messagesPerSecond: number;
  /** Burst of messages above that (default 20). */
  burst: number;
  /** Certificate renewals one stream may ask for (default 2). */
  certificateRenewals: number;
  /** Directive ids one ack may carry (default 100). */
  maxAckIds: number;
}

/** The defaults of {@link HeartbeatLimits}. */
export const DEFAULT_HEARTBEAT_LIMITS: HeartbeatLimits = { messagesPerSecond: 10, burst: 20, certificateRenewals: 2, maxAckIds: 100 };

/** A message on the response stream. */
export type HeartbeatOut = MessageInitShape<typeof HeartbeatResponseSchema>;

/**
 * Where a session's answers go: the transport (Connect's response generator, or the raw gRPC
 * stream). Acks have their own entry because they are the hot path: the raw transport encodes
 * them without building a message.
 */
export interface HeartbeatOutlet {
  /** A directive (or any other response message). */
  push(message: HeartbeatOut): void;
  /** The ack of one beat: its nonce, the server time and the derived state. */
  ack(nonce: bigint, nowMs: number, derived: DerivedState): void;
  /** Ends the stream with `error` after what was queued. */
  fail(error: unknown): void;
  /** Ends the stream (OK) after what was queued. */
  close(): void;
}

/**
 * What a session keeps of its deployment between beats (small: one per held stream). The
 * activation time the pending directives are read from is `facts.activatedAt`.
 */
interface View {
  facts: DeploymentFacts;
  /** One of a few shared objects ({@link sharedState}). */
  stored: DerivedState;
  leaseSeq: number;
  leaseIssuedAt: number | null;
  /** The deployment row's version the facts were read at (compare-and-set counter). */
  version: number;
}

function viewOf(loaded: Pick<Loaded, "deployment" | "license" | "facts">): View {
  return {
    facts: loaded.facts,
    stored: sharedState(storedStateOf(loaded.deployment)),
    leaseSeq: loaded.license?.leaseSeq ?? 0,
    leaseIssuedAt: loaded.license?.leaseIssuedAt?.getTime() ?? null,
    version: loaded.deployment.version,
  };
}

// The stored states of all held streams are a handful of distinct values: one object each.
const sharedStates = new Map<string, DerivedState>();
function sharedState(state: DerivedState): DerivedState {
  const key = `${state.state}/${state.lockReason ?? ""}`;
  let shared = sharedStates.get(key);
  if (!shared) sharedStates.set(key, (shared = Object.freeze({ state: state.state, lockReason: state.lockReason })));
  return shared;
}

/** The date pending directives are read from: the current box's activation (`loadPendingDirectives`). */
function sinceOf(view: View): Date | null {
  return view.facts.activatedAt === null ? null : new Date(view.facts.activatedAt);
}

/**
 * The caller of a heartbeat, as an appliance. The policy admits only appliances to the heartbeat
 * methods; this guards a misconfigured policy table, on both transports.
 */
export function requireAppliance(principal: Principal): AppliancePrincipal {
  if (principal.kind !== "appliance") throw new DomainError("PERMISSION_DENIED", "only appliances may send heartbeats");
  return principal;
}

/** A validated hello. */
export interface HelloInput {
  licenseId: string;
  fingerprintHash: string;
  lastLeaseSeq: number;
  agentVersion: string;
  /** The key ids of the box's JWKS (empty from boxes that do not report them). */
  keyIds: readonly string[];
}

/** Validates a hello's fields (shapes only). */
export function validateHello(hello: Pick<Hello, "licenseId" | "fingerprint" | "lastLeaseSeq" | "agentVersion" | "keyIds">, prefix = ""): HelloInput {
  const licenseId = requireId(hello.licenseId, `${prefix}license_id`);
  const fingerprintHash = requireFingerprintHash(hello.fingerprint, `${prefix}fingerprint`);
  const agentVersion = hello.agentVersion.trim();
  if (agentVersion.length > MAX_AGENT_VERSION_LENGTH) {
    throw invalid(`${prefix}agent_version`, `agent_version must be at most ${MAX_AGENT_VERSION_LENGTH} characters`);
  }
  if (hello.lastLeaseSeq < 0n) throw invalid(`${prefix}last_lease_seq`, "last_lease_seq must not be negative");
  const lastLeaseSeq = hello.lastLeaseSeq > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(hello.lastLeaseSeq);
  if (hello.keyIds.length > MAX_REPORTED_KEY_IDS || hello.keyIds.some((k) => k.length > 256)) {
    throw invalid(`${prefix}key_ids`, `key_ids must be at most ${MAX_REPORTED_KEY_IDS} ids of at most 256 characters`);
  }
  return { licenseId, fingerprintHash, lastLeaseSeq, agentVersion, keyIds: hello.keyIds };
}

/** A LOCK told to a box that is not to run, written nowhere (it may be the wrong box: the rows belong to the right one). */
export function ephemeralLock(reason: string, now: Date): Directive {
  return create(DirectiveSchema, { id: uuidv7(), type: DirectiveType.LOCK, reason, issueTime: timestampFromMs(now.getTime()) });
}

/** The lease seq a directive carries, if it carries one of ours (read without verifying: it came from our own table). */
function leaseSeqOf(directive: Directive): number | null {
  if (directive.leaseToken === "") return null;
  try {
    const seq = decodeJwt(directive.leaseToken)["seq"];
    return typeof seq === "number" ? seq : null;
  } catch {
    return null;
  }
}

/** The result of opening: the facts and what to redeliver. */
interface Opened {
  loaded: Loaded;
  pending: Directive[];
}

/**
 * `loadForDecision` for a hello, with fewer reads (10,000 boxes reconnect at once after a
 * restart): the hello's licence is usually the current one, so it is not read twice, and the
 * settings are the hub's cached copy, which is what every beat judges with anyway.
 */
async function loadForOpen(ctx: HeartbeatContext, license: LicenseRow): Promise<Loaded> {
  const { reads } = ctx;
  const deployment = await reads.deployment(license.deploymentId);
  if (!deployment) throw new DomainError("NOT_FOUND", `deployment ${license.deploymentId} does not exist`, { deploymentId: license.deploymentId });
  const current = deployment.licenseId === license.id ? license : deployment.licenseId ? await reads.license(deployment.licenseId) : null;
  return { deployment, license: current, facts: factsOf(deployment), settings: ctx.hub.settings(), now: ctx.deps.now() };
}

/**
 * Checks a hello (or a unary beat's identity fields) against the facts: licence of the
 * certificate's deployment, then the heartbeat verdict. Returns the refusal instead of throwing
 * when it means the box must lock, so the caller can push LOCK first.
 */
async function open(
  ctx: HeartbeatContext,
  principal: AppliancePrincipal,
  input: HelloInput,
): Promise<{ ok: true; loaded: Loaded } | { ok: false; code: DomainCode; message: string }> {
  const license = await ctx.reads.license(input.licenseId);
  if (!license) throw new DomainError("NOT_FOUND", `licence ${input.licenseId} does not exist`, { licenseId: input.licenseId });
  // The certificate names the deployment; a box may only speak for its own.
  assertOwnDeployment(principal, license.deploymentId);
  const loaded = await loadForOpen(ctx, license);
  // A licence superseded by a renewal keeps the binding, so the box carries on under the current
  // licence; a revoked one (current or not) is the operator's word.
  if (license.revokedAt) return { ok: false, code: "LICENSE_REVOKED", message: "the licence has been revoked" };
  const verdict = heartbeat(loaded.facts, input.fingerprintHash, loaded.now.getTime());
  if (!verdict.ok) {
    if (heartbeatRefusalLocksBox(verdict.code)) return { ok: false, code: verdict.code, message: verdict.message };
    throw new DomainError(verdict.code, verdict.message);
  }
  return { ok: true, loaded };
}

/**
 * What a box is told at hello (or a unary beat) besides its pending directives: the current key
 * set when its own differs — how a box that was offline when a key was revoked drops it — and
 * whether a pending directive carries a lease it can still verify (one signed by a key since
 * revoked does not count: the box is then given a fresh lease).
 */
function keySync(ctx: HeartbeatContext, input: HelloInput, pending: readonly Directive[]): { refresh: Directive[]; carriesLease: boolean } {
  // The gateway's last fetch, without I/O (the fleet sync keeps it within JWKS_MAX_AGE): a hello
  // storm never waits on signing-keys, and a hello before the first fetch is simply not compared.
  const jwks = ctx.deps.signing.lastJwks();
  const refresh = jwks && !sameKeySet(jwks.kids, input.keyIds) ? [refreshKeysDirective(jwks, ctx.deps.now())] : [];
  const carriesLease = pending.some((d) => d.leaseToken !== "" && (!jwks || signedByKeyIn(d.leaseToken, jwks.kids)));
  return { refresh, carriesLease };
}

/** Loads the directives to redeliver; RENEW_LEASE rows whose lease the box already holds are acked instead. */
async function pendingFor(ctx: HeartbeatContext, deploymentId: string, since: Date | null, boxSeq: number): Promise<Directive[]> {
  const { deps } = ctx;
  const rows = await ctx.reads.pending(deploymentId, since);
  const directives = rows.map(directiveToProto);
  const stale = directives.filter((d) => d.type === DirectiveType.RENEW_LEASE && (leaseSeqOf(d) ?? Infinity) <= boxSeq).map((d) => d.id);
  if (stale.length > 0) await ackDirectives(deps.db.em(), deploymentId, stale, deps.now());
  return directives.filter((d) => !stale.includes(d.id));
}

/**
 * The beat verdict on a view: "seen" (nothing changes), "change" (the derived state would change:
 * take the synchronous path) or a locking refusal.
 */
function judge(view: View, fingerprintHash: string, nowMs: number, ctx: HeartbeatContext):
  | { kind: "seen"; derived: DerivedState }
  | { kind: "change" }
  | { kind: "refused"; code: DomainCode; message: string; locks: boolean } {
  const verdict = heartbeat(view.facts, fingerprintHash, nowMs);
  if (!verdict.ok) return { kind: "refused", code: verdict.code, message: verdict.message, locks: heartbeatRefusalLocksBox(verdict.code) };
  const derived = deriveState(verdict.facts, nowMs, ctx.hub.settings());
  if (!sameDerivedState(derived, view.stored)) return { kind: "change" };
  return { kind: "seen", derived };
}

function leaseDue(view: View, derived: DerivedState, nowMs: number, ctx: HeartbeatContext): boolean {
  const state = leaseStateFor(view.stored);
  return needsNewLease({
    lastLease: view.leaseIssuedAt === null || state === null ? null : { issuedAt: view.leaseIssuedAt, seq: view.leaseSeq, state },
    derivedLeaseState: leaseStateFor(derived),
    now: nowMs,
    settings: ctx.hub.settings(),
  });
}

/** Runs a heartbeat through the change path (a beat that changes the derived state). */
async function changeThroughCore(ctx: HeartbeatContext, call: CallContext, deploymentId: string, fingerprintHash: string) {
  return applyDeploymentChange(ctx.deps, {
    deploymentId,
    call,
    action: "heartbeat",
    decide(loaded) {
      const verdict = heartbeat(loaded.facts, fingerprintHash, loaded.now.getTime());
      if (!verdict.ok) return verdict;
      return { facts: verdict.facts, audit: [], skipIfUnchanged: true };
    },
  });
}

/** The ack of a beat as a response message (the Connect path; the raw path encodes it directly). */
export function ackMessage(nonce: bigint, nowMs: number, derived: DerivedState): HeartbeatOut {
  return {
    kind: {
      case: "ack",
      value: { nonce, serverTime: timestampFromMs(nowMs), state: stateToProto(derived.state), lockReason: lockReasonToProto(derived.lockReason) },
    },
  };
}

/** What `observeCached` returns when the beat changes the derived state (the synchronous change path). */
const CHANGE = Symbol("change");

/**
 * One held Heartbeat stream. Create with the call's principal; feed it the box's messages. Kept
 * small (one per held stream): directive ids are tracked only once one was sent, and the common
 * beat is handled synchronously, without a promise.
 */
export class HeartbeatStream implements HeldStream {
  // uuid's strings are flat; node's randomUUID() keeps ~490 bytes of rope per id (held for hours).
  readonly streamId = uuidv7();
  deploymentId = "";
  /** The box's fingerprint hash, once its hello was accepted (null before). */
  private fingerprintHash: string | null = null;
  private view: View | null = null;
  private sent: Set<string> | null = null;
  private readonly limiter: RateLimiter;
  private refreshing: Promise<void> | null = null;
  private refreshAgain = false;
  private renewing = false;
  private certificateRenewals = 0;
  private closed = false;
  /** Whether the last directive pushed on this stream was a LOCK (the box is locked already). */
  private lastPushedLock = false;

  /** `requestId` is the call's (as in its CallContext); the context is built when a change needs it. */
  constructor(
    private readonly ctx: HeartbeatContext,
    private readonly principal: AppliancePrincipal,
    private readonly requestId: string,
    private readonly out: HeartbeatOutlet,
  ) {
    this.limiter = new RateLimiter(ctx.limits.burst);
  }

  /** The call context of this stream's changes (audit actor and request id); rarely needed, so not kept. */
  private get call(): CallContext {
    return { actor: actorOf(this.principal), requestId: this.requestId };
  }

  /**
   * Handles one message from the box; throws or rejects (a DomainError) to end the stream with
   * that code. Returns a promise only when the message needs I/O (hello, ack, a state change);
   * the next message must wait for it.
   */
  onMessage(message: { kind: { case: string | undefined; value?: unknown } }): Promise<void> | undefined {
    if (this.closed) return;
    if (!this.limiter.take(this.ctx.limits.messagesPerSecond, this.ctx.limits.burst)) {
      throw new DomainError(
        "RESOURCE_EXHAUSTED",
        `more than ${this.ctx.limits.messagesPerSecond} heartbeat messages a second; slow down and reconnect`,
      );
    }
    const kind = message.kind;
    if (this.fingerprintHash === null) {
      if (kind.case !== "hello") throw invalid("kind", "the first message on a heartbeat stream must be hello");
      return this.hello(kind.value as Hello);
    }
    switch (kind.case) {
      case "beat":
        this.ctx.counters.beat();
        return this.beat((kind.value as { nonce: bigint }).nonce);
      case "ack":
        return this.ack((kind.value as { directiveIds: string[] }).directiveIds);
      case "renewCertificate":
        this.renewCertificate((kind.value as { csrPem: string }).csrPem);
        return;
      case "hello":
        throw invalid("hello", "hello may be sent only once, as the first message");
      default:
        throw invalid("kind", "empty heartbeat message");
    }
  }

  private async hello(hello: Hello): Promise<void> {
    const input = validateHello(hello, "hello.");
    const opened = await open(this.ctx, this.principal, input);
    if (!opened.ok) return this.lockAndClose(opened.code, opened.message);
    const { loaded } = opened;
    // Accepted, so the hash equals the bound one the facts hold: keep that string, not a second copy.
    this.fingerprintHash = loaded.facts.boundFingerprintHash === input.fingerprintHash ? loaded.facts.boundFingerprintHash : input.fingerprintHash;
    this.deploymentId = loaded.deployment.id;
    this.view = viewOf(loaded);
    const { deps, hub, writer } = this.ctx;
    // Registered before the pending read, so a change committed in between is pushed, not lost.
    hub.add(this);
    writer.connected({
      streamId: this.streamId,
      deploymentId: this.deploymentId,
      replica: hub.replicaId,
      connectedAt: loaded.now,
      agentVersion: input.agentVersion,
    });
    if (input.agentVersion && input.agentVersion !== loaded.deployment.agentVersion) {
      // Not a fact (no version bump): what the box runs, for the heartbeat screen.
      await deps.db.em().nativeUpdate(DeploymentEntity, { id: this.deploymentId }, { agentVersion: input.agentVersion });
    }
    const pending = await pendingFor(this.ctx, this.deploymentId, sinceOf(this.view), input.lastLeaseSeq);
    // Keys first: a lease pending below may be signed by a key the box has yet to learn.
    const { refresh, carriesLease } = keySync(this.ctx, input, pending);
    this.deliver([...refresh, ...pending]);
    // The box may hold an older lease than the last we signed (its ack was lost, it restored a
    // backup, it dropped one signed by a revoked key and says 0): if nothing pending carries a
    // lease it can verify, give it a fresh one.
    await this.observe(deps.now(), !carriesLease && input.lastLeaseSeq < this.view.leaseSeq);
  }

  private beat(nonce: bigint): Promise<void> | undefined {
    const now = this.ctx.deps.now();
    const derived = this.observeCached(now, false);
    if (derived === CHANGE) {
      return this.observeThroughChange(now, false).then((changed) => {
        if (changed) this.out.ack(nonce, now.getTime(), changed);
      });
    }
    if (derived !== null) this.out.ack(nonce, now.getTime(), derived);
    return undefined;
  }

  /** The beat logic without the ack; returns the derived state, or null when the stream was closed. */
  private async observe(now: Date, forceLease: boolean): Promise<DerivedState | null> {
    const derived = this.observeCached(now, forceLease);
    return derived === CHANGE ? this.observeThroughChange(now, forceLease) : derived;
  }

  /**
   * The beat judged on the cached facts, in memory: the derived state when nothing changes (the
   * box is marked seen for the coalesced write), CHANGE when the state would change, null when
   * the stream was closed (LOCK pushed). Throws a refusal that does not lock.
   */
  private observeCached(now: Date, forceLease: boolean): DerivedState | typeof CHANGE | null {
    const view = this.view!;
    const nowMs = now.getTime();
    const verdict = judge(view, this.fingerprintHash!, nowMs, this.ctx);
    if (verdict.kind === "refused") {
      if (verdict.locks) {
        this.lockAndClose(verdict.code, verdict.message);
        return null;
      }
      throw new DomainError(verdict.code, verdict.message);
    }
    if (verdict.kind === "change") return CHANGE;
    // The cached facts keep the last_seen they were read with: every beat is judged at its own
    // time (heartbeat() sets last seen to now), and nothing else reads it. Replacing them per beat
    // kept a new object alive per box per second, promoted by every scavenge at 10,000 boxes.
    this.ctx.writer.seen(this.deploymentId, nowMs);
    this.renewLeaseIfDue(verdict.derived, nowMs, forceLease);
    return verdict.derived;
  }

  /** A beat that changes the derived state, through the one change path (recorded, directed). */
  private async observeThroughChange(now: Date, forceLease: boolean): Promise<DerivedState | null> {
    let derived: DerivedState;
    try {
      const result = await changeThroughCore(this.ctx, this.call, this.deploymentId, this.fingerprintHash!);
      this.view = viewOf({ deployment: result.deployment, license: result.license, facts: factsOf(result.deployment) });
      derived = result.derived;
    } catch (err) {
      if (err instanceof DomainError && heartbeatRefusalLocksBox(err.code as DomainCode)) {
        this.lockAndClose(err.code as DomainCode, err.message);
        return null;
      }
      throw err;
    }
    this.renewLeaseIfDue(derived, now.getTime(), forceLease);
    return derived;
  }

  private renewLeaseIfDue(derived: DerivedState, nowMs: number, forceLease: boolean): void {
    if ((forceLease || leaseDue(this.view!, derived, nowMs, this.ctx)) && !this.renewing) this.renewLeaseInBackground();
  }

  private renewLeaseInBackground(): void {
    this.renewing = true;
    renewLease(this.ctx.deps, this.deploymentId, "lease renewal")
      .then((renewed) => {
        // The directive reached us through the hub already; remember the lease so the next beat does not renew again.
        if (renewed && this.view) this.view = { ...this.view, leaseSeq: renewed.seq, leaseIssuedAt: renewed.issuedAt.getTime() };
      })
      .catch((err: unknown) => this.ctx.deps.log.warn({ err, deploymentId: this.deploymentId }, "lease renewal failed; retried on a later beat"))
      .finally(() => {
        this.renewing = false;
      });
  }

  private async ack(ids: readonly string[]): Promise<void> {
    if (ids.length > this.ctx.limits.maxAckIds) throw invalid("ack.directive_ids", `at most ${this.ctx.limits.maxAckIds} ids per ack`);
    const valid = ids.filter((id) => /^[0-9a-f-]{36}$/i.test(id));
    if (valid.length === 0) return;
    await ackDirectives(this.ctx.deps.db.em(), this.deploymentId, valid, this.ctx.deps.now());
    if (this.sent) for (const id of valid) this.sent.delete(id);
  }

  private renewCertificate(csrPem: string): void {
    if (csrPem.trim() === "" || csrPem.length > MAX_CSR_BYTES) throw invalid("renew_certificate.csr_pem", `csr_pem must be 1 to ${MAX_CSR_BYTES} bytes`);
    if (++this.certificateRenewals > this.ctx.limits.certificateRenewals) {
      throw new DomainError("RESOURCE_EXHAUSTED", "too many certificate renewals on one stream");
    }
    const { deps } = this.ctx;
    const deploymentId = this.deploymentId;
    const fingerprintHash = this.fingerprintHash!;
    void (async () => {
      const cert = await deps.signing.issueApplianceCertificate(deploymentId, csrPem);
      // Recorded only if the licence and binding are still those this stream was admitted under.
      const outcome = await storeRenewedCertificate(deps, deploymentId, fingerprintHash, cert);
      this.ctx.counters.certificateRenewal(outcome);
      if (outcome === "refused") deps.log.info({ deploymentId }, "certificate renewal refused: the licence was revoked or moved meanwhile");
    })().catch((err: unknown) => {
      this.ctx.counters.certificateRenewal("failed");
      deps.log.warn({ err, deploymentId }, "certificate renewal failed");
    });
  }

  /** Pushes directives not yet sent on this stream, in order. */
  deliver(directives: readonly Directive[]): void {
    if (this.closed) return;
    for (const d of directives) {
      if (d.id !== "") {
        if (this.sent?.has(d.id)) continue;
        (this.sent ??= new Set()).add(d.id);
      }
      this.out.push({ kind: { case: "directive", value: d } });
      this.lastPushedLock = d.type === DirectiveType.LOCK;
      this.ctx.counters.directivePushed(DirectiveType[d.type] ?? String(d.type));
    }
  }

  /** See {@link HeldStream.isStale}. */
  isStale(version: number, pending: readonly PendingDirective[]): boolean {
    const view = this.view;
    if (this.closed || view === null) return false;
    if (version !== view.version) return true;
    // Only what a re-read would deliver: directives since this activation (as pendingFor reads them).
    const since = view.facts.activatedAt ?? -Infinity;
    return pending.some((d) => d.createdAtMs >= since && !this.sent?.has(d.id));
  }

  /** Re-reads the facts and pending directives (coalesced: at most one read in flight, one queued). */
  refresh(): void {
    if (this.closed || this.fingerprintHash === null) return;
    if (this.refreshing) {
      this.refreshAgain = true;
      return;
    }
    this.refreshing = (async () => {
      do {
        this.refreshAgain = false;
        const loaded = await loadForDecision(this.ctx.deps, this.deploymentId);
        if (this.closed) return;
        this.view = viewOf(loaded);
        const pending = await pendingFor(this.ctx, this.deploymentId, sinceOf(this.view), 0);
        this.deliver(pending);
        const verdict = judge(this.view, this.fingerprintHash!, loaded.now.getTime(), this.ctx);
        // A change elsewhere made this box one that may not run (revoked, rebound): tell it now
        // rather than at its next beat, and end the stream.
        if (verdict.kind === "refused" && verdict.locks) this.lockAndClose(verdict.code, verdict.message);
      } while (this.refreshAgain && !this.closed);
    })()
      .catch((err: unknown) => this.ctx.deps.log.warn({ err, deploymentId: this.deploymentId }, "could not re-read a streaming deployment"))
      .finally(() => {
        this.refreshing = null;
      });
  }

  /** See {@link HeldStream.replaced}: the hub already holds the newer stream in this one's place. */
  replaced(): void {
    if (this.closed) return;
    this.closed = true;
    this.out.fail(new DomainError("STREAM_REPLACED", "a newer heartbeat stream of this deployment replaced this one (does another process use this certificate?)"));
    this.dispose();
  }

  /**
   * Pushes LOCK, then ends the stream with the refusal's code. A revoke or rebind has just pushed
   * its stored LOCK (from the hub, or redelivered by the re-read that found the refusal): that row
   * is the one LOCK the box gets — the one it would get on its return and whose ack is recorded —
   * so an ephemeral copy is pushed only when the box was not just told LOCK.
   */
  private lockAndClose(code: DomainCode, message: string): void {
    if (this.closed) return;
    if (!this.lastPushedLock) {
      this.out.push({ kind: { case: "directive", value: ephemeralLock(message, this.ctx.deps.now()) } });
      this.ctx.counters.directivePushed("LOCK");
    }
    this.closed = true;
    this.out.fail(new DomainError(code, message));
    this.dispose();
  }

  /** Unregisters the stream (idempotent). */
  dispose(): void {
    this.closed = true;
    if (this.deploymentId !== "") {
      this.ctx.hub.remove(this);
      this.ctx.writer.disconnected(this.streamId);
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }
}

/** The unary SendHeartbeat: the same rules as the stream, one beat per call, pending directives in the answer. */
export async function unaryHeartbeat(
  ctx: HeartbeatContext,
  principal: AppliancePrincipal,
  call: CallContext,
  input: HelloInput,
  ackedIds: readonly string[],
): Promise<{ now: Date; derived: DerivedState; directives: Directive[] }> {
  const { deps } = ctx;
  if (ackedIds.length > ctx.limits.maxAckIds) throw invalid("acked_directive_ids", `at most ${ctx.limits.maxAckIds} ids per call`);
  const opened = await open(ctx, principal, input);
  const now = deps.now();
  if (!opened.ok) {
    // The box must stop; the answer is the LOCK itself (a unary call cannot push, then fail).
    return { now, derived: { state: "LOCKED", lockReason: opened.code === "LICENSE_EXPIRED" ? "EXPIRED" : opened.code === "LICENSE_REVOKED" ? "REVOKED" : null }, directives: [ephemeralLock(opened.message, now)] };
  }
  const { loaded } = opened;
  const deploymentId = loaded.deployment.id;
  const valid = ackedIds.filter((id) => /^[0-9a-f-]{36}$/i.test(id));
  if (valid.length > 0) await ackDirectives(deps.db.em(), deploymentId, valid, now);
  let view = viewOf(loaded);
  const verdict = judge(view, input.fingerprintHash, now.getTime(), ctx);
  let derived: DerivedState;
  if (verdict.kind === "refused") throw new DomainError(verdict.code, verdict.message);
  if (verdict.kind === "change") {
    const result = await changeThroughCore(ctx, call, deploymentId, input.fingerprintHash);
    view = viewOf({ deployment: result.deployment, license: result.license, facts: factsOf(result.deployment) });
    derived = result.derived;
  } else {
    derived = verdict.derived;
    ctx.writer.seen(deploymentId, now.getTime());
  }
  if (input.agentVersion && input.agentVersion !== loaded.deployment.agentVersion) {
    await deps.db.em().nativeUpdate(DeploymentEntity, { id: deploymentId }, { agentVersion: input.agentVersion });
  }
  let pending = await pendingFor(ctx, deploymentId, sinceOf(view), input.lastLeaseSeq);
  const { refresh, carriesLease } = keySync(ctx, input, pending);
  pending = [...refresh, ...pending];
  if (leaseDue(view, derived, now.getTime(), ctx) || (!carriesLease && input.lastLeaseSeq < view.leaseSeq)) {
    const renewed = await renewLease(deps, deploymentId, "lease renewal");
    if (renewed) pending = [...pending, renewed.directive];
  }
  return { now, derived, directives: pending };
}
