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
import { heartbeatRefusalLocksBox, type DerivedState, type DomainCode } from "@lcp/domain";
import type { Hello } from "@lcp/proto/licensing/v1/appliance_service_pb";
import { DirectiveType, type Directive } from "@lcp/proto/licensing/v1/types_pb";
import { currentSpanContext, DomainError, inChildSpan, type AppliancePrincipal, type Principal } from "@lcp/rpc";
import type { SpanContext } from "@opentelemetry/api";
import { v7 as uuidv7 } from "uuid";
import { actorOf, type CallContext } from "../core/audit.js";
import { loadForDecision } from "../core/deployment-change.js";
import { invalid } from "../validation.js";
import { DeploymentEntity } from "../storage/entities.js";
import { factsOf } from "../storage/repository.js";
import { MAX_CSR_BYTES } from "../appliance-service/validate.js";
import type { HeartbeatContext, HeartbeatOutlet } from "./context.js";
import { ackDirectives, catchUpLeaseSeq, renewLease, storeRenewedCertificate } from "./directive-store.js";
import { ephemeralLock, keySync, open, pendingFor, validateHello } from "./hello.js";
import { RateLimiter } from "./push-queue.js";
import type { HeldStream, PendingDirective } from "./stream-hub.js";
import { changeThroughCore, judge, leaseDue, sinceOf, viewOf, type View } from "./view.js";

/**
 * The caller of a heartbeat, as an appliance. The policy admits only appliances to the heartbeat
 * methods; this guards a misconfigured policy table, on both transports.
 */
export function requireAppliance(principal: Principal): AppliancePrincipal {
  if (principal.kind !== "appliance") throw new DomainError("PERMISSION_DENIED", "only appliances may send heartbeats");
  return principal;
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
  /** The stream call's trace span, when tracing is on: pushes made by other calls link to it. */
  private readonly streamSpan: SpanContext | undefined = currentSpanContext();

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
    if (loaded.license && input.lastLeaseSeq > this.view.leaseSeq) {
      this.view = { ...this.view, leaseSeq: await catchUpLeaseSeq(deps, loaded.license.id, this.deploymentId, this.view.leaseSeq, input.lastLeaseSeq) };
    }
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

  /**
   * Pushes directives not yet sent on this stream, in order. When a traced call pushes (a revoke,
   * an operator's directive), the push is a span of that call's trace, linked to the stream's.
   */
  deliver(directives: readonly Directive[]): void {
    if (this.closed || directives.length === 0) return;
    if (this.streamSpan === undefined) return this.push(directives);
    inChildSpan(
      "licensing.v1.ApplianceService/Heartbeat push",
      { "lcp.deployment_id": this.deploymentId, "lcp.stream_id": this.streamId, "lcp.directive_types": directives.map((d) => DirectiveType[d.type] ?? String(d.type)) },
      [{ context: this.streamSpan }],
      () => this.push(directives),
    );
  }

  private push(directives: readonly Directive[]): void {
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
