/**
 * The appliance: what a box embeds to activate its licence, hold the heartbeat stream and decide
 * its own state offline (docs/design.md §4–§6, §8). The control plane is never trusted to be
 * reachable: every decision comes from the last verified lease, the local locks and the time
 * watermark, so the box keeps serving through an outage and stops once its lease runs out.
 *
 * This is the shell: it holds the state, runs the timers and the connection (connection.ts), and
 * carries out what the pure directive core (directives.ts) decides.
 */
import type { ApplianceLease } from "@lcp/domain";
import type { Directive } from "@lcp/proto/licensing/v1/types_pb";
import { activateBox } from "./activation.js";
import {
  ActivationError,
  type ActivationResult,
  type Appliance,
  type ApplianceEvents,
  type ApplianceLogger,
  type ApplianceOptions,
  type ApplianceStateView,
  type ApplianceStatus,
  type OfflineImportResult,
  type UnaryHeartbeatResult,
} from "./api.js";
import { CertificateRenewal } from "./certificate.js";
import { connectionLoop, unaryBeat, type ConnectionHost, type StreamContext } from "./connection.js";
import { applyDirective, asksForCsr, dropLeaseIfReplacementDue, emitEvent, isDuplicate, reportedLeaseSeq, type BoxState, type Effect } from "./directives.js";
import { createEmitter, type TypedEmitter } from "./emitter.js";
import { DEFAULT_LEASE_REPLACEMENT_MS } from "./key-set.js";
import { evaluateBox, recentlyContacted, runtimeSettings, watermarkWriteDue } from "./evaluation.js";
import { checkOfferedLease, type OfferedLease } from "./lease.js";
import { errorReason } from "./messages.js";
import {
  OfflineFileError,
  activationRequest,
  checkResponse,
  pendingRequestPath,
  readPendingRequest,
  removePendingRequest,
  renewalRequest,
  writePendingRequest,
  type OfflineRequestKind,
  type PendingRequest,
} from "./offline.js";
import { realScheduler, type Scheduler, type TimerHandle } from "./scheduler.js";
import { SessionTicketCache } from "./tls-session.js";
import { StateFileError, StateFileWriter, loadState, type ApplianceRuntimeSettings, type ApplianceStateFile } from "./state-file.js";
import { openTransport } from "./transport.js";

const noopLogger: ApplianceLogger = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * Creates an appliance, loading its state file if there is one (a box that already activated
 * resumes on its stored lease, certificate and watermark without calling the control plane).
 * @throws StateFileError if the file is corrupt, belongs to another licence, or its lease does
 *   not verify against its JWKS.
 */
export async function createAppliance(options: ApplianceOptions): Promise<Appliance> {
  const appliance = new ApplianceImpl(options);
  await appliance.load();
  return appliance;
}

class ApplianceImpl implements Appliance {
  readonly licenseId: string;
  private readonly clock: () => number;
  private readonly scheduler: Scheduler;
  private readonly log: ApplianceLogger;
  private readonly events: TypedEmitter<ApplianceEvents>;
  private readonly evaluateEveryMs: number;
  private readonly callTimeoutMs: number;
  private readonly leaseReplacementMs: number;
  private readonly writer: StateFileWriter;
  private readonly certificates: CertificateRenewal;
  /** The heartbeat connection's last TLS session ticket, offered on every redial. */
  private readonly tickets: SessionTicketCache;
  /** What the connection loop runs with. */
  private readonly host: ConnectionHost;
  /** A unary box beats again at once to be given a fresh lease (the stream reconnects instead). */
  private askLeaseNow = false;
  /** No baseUrl: the box never dials; it activates and renews by files (offline.ts). */
  private readonly airGapped: boolean;
  private readonly pendingPath: string;
  /** The request file written and waiting for its response, if any. */
  private pending: PendingRequest | null = null;
  /** The renewAt "renewal-due" was emitted for (once per response). */
  private renewalDueReported: number | null = null;
  /** Offline requests and imports run one at a time: each replaces or consumes the pending request. */
  private offlineQueue: Promise<unknown> = Promise.resolve();

  private st: ApplianceStateFile | null = null;
  private lease: ApplianceLease | null = null;
  private appliedIds: readonly string[] = [];
  private streamHealthy = false;
  private lastContactAt: number | null = null;
  private lastReported: ApplianceStateView | null = null;

  private running = false;
  private evalTimer: TimerHandle | null = null;
  private loop: Promise<void> | null = null;
  private loopAbort: AbortController | null = null;
  private stream: StreamContext | null = null;

  constructor(private readonly options: ApplianceOptions) {
    this.licenseId = options.licenseId;
    this.airGapped = options.baseUrl === undefined;
    this.pendingPath = pendingRequestPath(options.stateFile);
    this.clock = options.clock ?? Date.now;
    this.scheduler = options.scheduler ?? realScheduler;
    this.log = options.logger ?? noopLogger;
    this.evaluateEveryMs = Math.max(1, options.evaluateEveryMs ?? 1_000);
    this.callTimeoutMs = options.callTimeoutMs ?? 30_000;
    this.leaseReplacementMs = options.leaseReplacementMs ?? DEFAULT_LEASE_REPLACEMENT_MS;
    this.tickets = new SessionTicketCache(this.clock);
    this.events = createEmitter<ApplianceEvents>((error, event) => {
      this.log.error({ err: error, event }, "appliance event listener threw");
    });
    this.writer = new StateFileWriter(options.stateFile, () => this.st, (error) => this.reportError(error));
    const persist = () => this.writer.persist();
    const reportError = (error: unknown) => this.reportError(error);
    const file = () => {
      if (!this.st) throw new Error("appliance is not activated: call activate() first");
      return this.st;
    };
    this.certificates = new CertificateRenewal({ clock: this.clock, trustDomain: options.trustDomain, log: this.log, file: () => this.st, persist, reportError });
    this.host = {
      options,
      clock: this.clock,
      scheduler: this.scheduler,
      log: this.log,
      callTimeoutMs: this.callTimeoutMs,
      tickets: this.tickets,
      certificates: this.certificates,
      file,
      transport: (identity) => openTransport(options, this.tickets, identity),
      intervalMs: () => this.settings().heartbeatIntervalMs,
      reportedLeaseSeq: () => (this.st ? reportedLeaseSeq({ file: this.st, lease: this.lease, appliedIds: this.appliedIds }) : 0n),
      setStreamHealthy: (healthy) => this.setStreamHealthy(healthy),
      setStream: (stream) => {
        this.stream = stream;
      },
      contacted: (at) => {
        this.lastContactAt = at;
      },
      raiseWatermark: (serverTime) => {
        if (this.st && serverTime > this.st.watermark) this.st.watermark = serverTime;
      },
      refresh: () => void this.refresh(),
      persist,
      reportError,
      markRevoked: () => this.markRevoked(),
      applyDirective: (directive, ack) => this.applyDirective(directive, ack),
      takeAskLeaseNow: () => {
        const soon = this.askLeaseNow;
        this.askLeaseNow = false;
        return soon;
      },
    };
  }

  // ---------------------------------------------------------------- loading and evaluation

  async load(): Promise<void> {
    const loaded = await loadState(this.options.stateFile, this.options);
    if (loaded) {
      this.install({ ...loaded, appliedIds: [] });
      this.writer.persistedWatermark = loaded.file.watermark;
    }
    this.pending = this.loadPending();
  }

  /**
   * The pending request, if one is waiting. An unreadable one is not worth refusing to start
   * over (the box runs on its lease regardless): it is reported, and a new request replaces it.
   */
  private loadPending(): PendingRequest | null {
    let pending: PendingRequest | null;
    try {
      pending = readPendingRequest(this.pendingPath);
    } catch (error) {
      this.log.warn({ err: error }, "pending offline request unreadable; write a new request");
      return null;
    }
    const licenses = [this.options.licenseId, ...(this.st ? [this.st.licenseId, ...(this.st.previousLicenseIds ?? [])] : [])];
    if (pending && !licenses.includes(pending.licenseId)) {
      this.log.warn({ licenseId: pending.licenseId }, "pending offline request is for another licence; ignored");
      return null;
    }
    return pending;
  }

  private settings(): ApplianceRuntimeSettings {
    return runtimeSettings(this.st);
  }

  private isConnected(now: number): boolean {
    return this.streamHealthy || recentlyContacted(this.lastContactAt, now, this.settings());
  }

  private evaluate(): ApplianceStateView {
    const now = this.clock();
    // An air-gapped box's health is its lease: it is never in touch, and never in GRACE for that.
    const { view, watermark } = evaluateBox(this.st, this.lease, now, this.airGapped || this.isConnected(now));
    const st = this.st;
    if (st) {
      if (watermark > st.watermark) st.watermark = watermark;
      if (watermarkWriteDue(st, this.writer.persistedWatermark)) void this.writer.persist();
    }
    return view;
  }

  /** Re-evaluates, emits "state" on a change, and (while running) schedules the next evaluation. */
  private refresh(): ApplianceStateView {
    const drop = this.st ? dropLeaseIfReplacementDue(this.box(this.st), this.clock(), this.leaseReplacementMs) : null;
    if (drop) {
      this.install(drop.state);
      // Its persist comes last, so the log and the event happen now, before the evaluation.
      void this.run(drop.effects);
    }
    const view = this.evaluate();
    const prev = this.lastReported;
    if (!prev || prev.state !== view.state || prev.reason !== view.reason) {
      this.lastReported = view;
      this.events.emit("state", { ...view, previous: prev, at: this.clock() });
    }
    if (this.running) this.reportRenewalDue();
    if (this.running) this.scheduleEvaluation();
    return view;
  }

  /** Emits "renewal-due" once the box's clock passes the last response's renewAt. */
  private reportRenewalDue(): void {
    const renewAt = this.st?.renewAt;
    if (renewAt === undefined || this.clock() < renewAt || this.renewalDueReported === renewAt) return;
    this.renewalDueReported = renewAt;
    this.log.info({ renewAt }, "offline renewal due: write a renewal request");
    this.events.emit("renewal-due", { renewAt, leaseExpiresAt: this.lease?.exp ?? null });
  }

  private scheduleEvaluation(): void {
    if (this.evalTimer !== null) this.scheduler.clearTimeout(this.evalTimer);
    let delay = this.evaluateEveryMs;
    // Wake exactly at lease expiry, so GRACE → LOCKED happens on time with no network at all.
    if (this.lease) {
      const untilExpiry = this.lease.exp - this.clock();
      if (untilExpiry > 0) delay = Math.min(delay, untilExpiry);
      const untilDrop = (this.st?.leaseReplacement?.deadline ?? Infinity) - this.clock();
      if (untilDrop > 0) delay = Math.min(delay, untilDrop);
    }
    const renewAt = this.st?.renewAt;
    if (renewAt !== undefined && this.renewalDueReported !== renewAt) {
      const untilRenewal = renewAt - this.clock();
      if (untilRenewal > 0) delay = Math.min(delay, untilRenewal);
    }
    this.evalTimer = this.scheduler.setTimeout(() => {
      this.evalTimer = null;
      try {
        this.refresh();
      } catch (error) {
        this.reportError(error);
        if (this.running) this.scheduleEvaluation();
      }
    }, Math.max(1, delay));
  }

  private reportError(error: unknown): void {
    const err = error instanceof Error ? error : new Error(String(error));
    this.log.warn({ err }, "appliance background error");
    this.events.emit("error", err);
  }

  private setStreamHealthy(healthy: boolean): void {
    if (this.streamHealthy === healthy) return;
    this.streamHealthy = healthy;
    this.refresh();
  }

  // ---------------------------------------------------------------- public surface

  isActivated(): boolean {
    return this.st !== null;
  }

  state(): ApplianceStateView {
    // A read also reports a change, so a host polling state() and one listening agree.
    return this.refresh();
  }

  status(): ApplianceStatus {
    const view = this.state();
    return {
      ...view,
      activated: this.st !== null,
      licenseId: this.st?.licenseId ?? this.options.licenseId,
      deploymentId: this.st?.deploymentId ?? null,
      connected: this.isConnected(this.clock()),
      leaseSeq: this.lease?.seq ?? null,
      leaseExpiresAt: this.lease?.exp ?? null,
      leaseReplaceBy: this.st?.leaseReplacement?.deadline ?? null,
      heartbeatIntervalMs: this.settings().heartbeatIntervalMs,
      watermark: this.st?.watermark ?? 0,
      airGapped: this.airGapped,
      renewAt: this.st?.renewAt ?? null,
      pendingRequest: this.pending ? { kind: this.pending.kind, createdAt: this.pending.createdAt } : null,
    };
  }

  on<K extends keyof ApplianceEvents>(event: K, listener: ApplianceEvents[K]): () => void {
    return this.events.on(event, listener);
  }

  off<K extends keyof ApplianceEvents>(event: K, listener: ApplianceEvents[K]): void {
    this.events.off(event, listener);
  }

  start(): void {
    if (!this.st) throw new Error(`appliance is not activated: ${this.airGapped ? "import an activation response first" : "call activate() first"}`);
    this.running = true;
    this.refresh();
    if (this.loop || this.airGapped) return;
    const abort = new AbortController();
    this.loopAbort = abort;
    this.loop = connectionLoop(this.host, abort.signal)
      .catch((error: unknown) => this.reportError(error))
      .finally(() => {
        if (this.loopAbort === abort) {
          this.loop = null;
          this.loopAbort = null;
        }
      });
  }

  async disconnect(): Promise<void> {
    const loop = this.loop;
    this.loopAbort?.abort();
    this.loop = null;
    this.loopAbort = null;
    await loop;
    // Disconnected on purpose: no recent contact may keep the box counted as online.
    this.lastContactAt = null;
    this.setStreamHealthy(false);
    this.refresh();
  }

  async stop(): Promise<void> {
    await this.disconnect();
    this.running = false;
    if (this.evalTimer !== null) this.scheduler.clearTimeout(this.evalTimer);
    this.evalTimer = null;
    if (this.st) await this.writer.persist();
  }

  async activate(): Promise<ActivationResult> {
    if (this.airGapped) {
      throw new ActivationError("AIR_GAPPED", "this box is air-gapped (no baseUrl): activate by files with writeActivationRequest() and importResponse()");
    }
    const activated = await activateBox({
      options: this.options,
      clock: this.clock,
      callTimeoutMs: this.callTimeoutMs,
      transport: () => openTransport(this.options, this.tickets, null),
      current: () => this.st,
      onRevoked: () => this.markRevoked(),
      onLeaseRejected: (event) => this.events.emit("lease-rejected", event),
    });
    this.install({ file: activated.file, lease: activated.lease, appliedIds: [] });
    this.lastContactAt = activated.at;
    // Activation must not report success unless the box can survive a reboot: write strictly.
    await this.writer.writeNow();
    const { deploymentId, spiffeId, lease } = activated;
    this.log.info({ deploymentId, leaseSeq: lease.seq }, "appliance activated");
    return { deploymentId, spiffeId, leaseSeq: lease.seq, state: this.refresh() };
  }

  async sendHeartbeatOnce(): Promise<UnaryHeartbeatResult> {
    if (this.airGapped) {
      throw new OfflineFileError("AIR_GAPPED", "this box is air-gapped (no baseUrl): renew by files with writeRenewalRequest() and importResponse()");
    }
    try {
      const directives = await unaryBeat(this.host);
      return { ok: true, state: this.refresh(), directives };
    } catch (error) {
      const err = error instanceof Error ? error : new Error(String(error));
      if (errorReason(error) === "LICENSE_REVOKED") await this.markRevoked().catch(() => {});
      this.reportError(err);
      return { ok: false, state: this.refresh(), error: err };
    }
  }

  // ---------------------------------------------------------------- air-gapped files

  async writeActivationRequest(): Promise<string> {
    return this.offline(async () => {
      const { file, pending } = await activationRequest(this.options, this.clock());
      await this.savePending(pending);
      this.log.info({ deploymentId: pending.deploymentId }, "offline activation request written");
      return file;
    });
  }

  async writeRenewalRequest(usage: Record<string, number> = {}): Promise<string> {
    return this.offline(async () => {
      if (!this.st) throw new OfflineFileError("NOT_ACTIVATED", "a renewal request needs an activated box: write an activation request first");
      const { file, pending } = await renewalRequest(this.options, this.st, usage, this.clock());
      await this.savePending(pending);
      this.log.info({ deploymentId: pending.deploymentId, leaseSeq: this.st.highestLeaseSeq }, "offline renewal request written");
      return file;
    });
  }

  async importResponse(text: string): Promise<OfflineImportResult> {
    return this.offline(async () => {
      const pending = this.pending;
      const verdict = await checkResponse(text, { box: this.options, pending, current: this.st, now: this.clock() });
      if (!verdict.ok) {
        if (verdict.leaseRejection) this.events.emit("lease-rejected", verdict.leaseRejection);
        this.refuseResponse(verdict.error, pending?.kind ?? null);
        throw verdict.error;
      }
      if (verdict.file) {
        const before = { file: this.st, lease: this.lease, appliedIds: this.appliedIds };
        this.install({ file: verdict.file, lease: verdict.lease === "held" ? this.lease : verdict.lease, appliedIds: verdict.kind === "activation" ? [] : this.appliedIds });
        try {
          // Like activate(): nothing is reported adopted unless it survives a reboot.
          await this.writer.writeNow();
        } catch (error) {
          this.st = before.file;
          this.lease = before.lease;
          this.appliedIds = before.appliedIds;
          // A background write may have caught the adopted state meanwhile: put the held one back.
          if (this.st) void this.writer.persist();
          throw new StateFileError(this.options.stateFile, "could not be written; the response was not adopted", { cause: error });
        }
      }
      // Answered: this request's response must never import again.
      this.pending = null;
      await removePendingRequest(this.pendingPath).catch((error: unknown) => this.reportError(error));
      if (verdict.effects) await this.run(verdict.effects);
      const deploymentId = verdict.file?.deploymentId ?? pending!.deploymentId;
      const leaseSeq = verdict.file ? (this.lease?.seq ?? null) : null;
      this.log.info({ kind: verdict.kind, answer: verdict.answer, lockReason: verdict.lockReason, deploymentId, leaseSeq }, "offline response imported");
      return {
        kind: verdict.kind,
        answer: verdict.answer,
        ...(verdict.lockReason === undefined ? {} : { lockReason: verdict.lockReason }),
        deploymentId,
        leaseSeq,
        renewAt: this.st?.renewAt ?? null,
        state: this.refresh(),
      };
    });
  }

  /** Runs offline operations one after another (a failure does not block the next). */
  private offline<T>(op: () => Promise<T>): Promise<T> {
    const result = this.offlineQueue.then(op);
    this.offlineQueue = result.catch(() => {});
    return result;
  }

  /** Stores a new pending request strictly (it replaces the old one only once on disk). */
  private async savePending(pending: PendingRequest): Promise<void> {
    try {
      await writePendingRequest(this.pendingPath, pending);
    } catch (error) {
      throw new StateFileError(this.pendingPath, "could not be written", { cause: error });
    }
    this.pending = pending;
  }

  private refuseResponse(error: OfflineFileError, kind: OfflineRequestKind | null): void {
    this.log.warn({ code: error.code, kind }, `offline response refused: ${error.message}`);
    this.events.emit("offline-response-refused", { code: error.code, message: error.message, kind });
  }

  private async markRevoked(): Promise<void> {
    if (!this.st || this.st.revoked) return;
    this.st.revoked = true;
    await this.writer.persist();
    this.refresh();
  }

  // ---------------------------------------------------------------- directives

  private box(file: ApplianceStateFile): BoxState {
    return { file, lease: this.lease, appliedIds: this.appliedIds };
  }

  private install(state: BoxState): void {
    this.st = state.file;
    this.lease = state.lease;
    this.appliedIds = state.appliedIds;
  }

  /**
   * Applies one directive: the I/O it needs first (the lease's signature check, a CSR sent on the
   * stream), then the pure decision (directives.ts), then its effects in order.
   */
  private async applyDirective(directive: Directive, ack: (ids: readonly string[]) => void): Promise<void> {
    if (!this.st) return;
    let lease: OfferedLease | undefined;
    let csrSent: boolean | undefined;
    if (!isDuplicate(this.box(this.st), directive)) {
      if (directive.leaseToken !== "") {
        lease = await checkOfferedLease(
          directive.leaseToken,
          { file: this.st, holdsLease: this.lease !== null },
          { issuer: this.options.issuer, fingerprint: this.options.fingerprint, now: this.clock() },
        );
      }
      if (asksForCsr(directive)) csrSent = await this.certificates.onRequest(directive.id, this.stream);
    }
    const decision = applyDirective(this.box(this.st), directive, { now: this.clock(), leaseReplacementMs: this.leaseReplacementMs, lease, csrSent });
    this.install(decision.state);
    await this.run(decision.effects, ack);
  }

  /** Carries out a decision's effects in order; a write is awaited before what follows it. */
  private async run(effects: readonly Effect[], ack?: (ids: readonly string[]) => void): Promise<void> {
    for (const effect of effects) {
      switch (effect.kind) {
        case "persist":
          await this.writer.persist();
          break;
        case "ack":
          ack?.(effect.ids);
          break;
        case "emit":
          emitEvent(this.events, effect);
          break;
        case "log":
          this.log[effect.level](effect.obj, effect.msg);
          break;
        case "error":
          this.reportError(new Error(effect.message));
          break;
        case "reschedule-beat":
          this.stream?.rescheduleBeat();
          break;
        case "ask-lease-now":
          this.askLeaseNow = true;
          break;
        case "certificate-adopted":
          this.certificates.adopted();
          break;
        case "evaluate":
          this.refresh();
          break;
        case "reconnect":
          this.stream?.reconnectNow();
          break;
      }
    }
  }
}
