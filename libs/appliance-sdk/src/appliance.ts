/**
 * The appliance: what a box embeds to activate its licence, hold the heartbeat stream and decide
 * its own state offline (docs/design.md §4–§6, §8). The control plane is never trusted to be
 * reachable: every decision comes from the last verified lease, the local locks and the time
 * watermark, so the box keeps serving through an outage and stops once its lease runs out.
 */
import { X509Certificate } from "node:crypto";
import { Agent as HttpsAgent } from "node:https";
import { durationMs, timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { Http2SessionManager, createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { decodeJwt, type JSONWebKeySet } from "jose";
import {
  DEFAULT_SETTINGS,
  HEARTBEAT_INTERVAL_RANGE_MS,
  evaluateApplianceState,
  type ApplianceLease,
  type ApplianceLockReason,
  type ApplianceState,
} from "@lcp/domain";
import { DEFAULT_TRUST_DOMAIN, applianceSpiffeId, generateKeyAndCsr, isValidSpiffeName } from "@lcp/pki";
import {
  ApplianceService,
  type ActivateResponse,
  type HeartbeatRequestSchema,
  type HeartbeatResponse,
} from "@lcp/proto/licensing/v1/appliance_service_pb";
import { DirectiveType, type Directive } from "@lcp/proto/licensing/v1/types_pb";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { DEFAULT_BACKOFF, backoffDelay, replacedDelay, type BackoffOptions } from "./backoff.js";
import { createEmitter, type TypedEmitter } from "./emitter.js";
import { DEFAULT_LEASE_REPLACEMENT_MS, adoptKeySet, keyIdsOf, parseJwks, replacementExpired, signedByKeyOf, storedLeaseKeys } from "./key-set.js";
import { checkLease, recheckStoredLease, toApplianceLease, type LeaseRejectionCode } from "./lease.js";
import { certificateMatchesKey, directiveKind, errorReason, settingsFrom, type DirectiveKind } from "./messages.js";
import { createOutbox, type Outbox } from "./outbox.js";
import { realScheduler, type Scheduler, type TimerHandle } from "./scheduler.js";
import { SessionTicketCache, refreshTicket, resumingConnection } from "./tls-session.js";
import {
  StateFileError,
  STATE_FILE_VERSION,
  readStateFile,
  writeStateFile,
  type ApplianceRuntimeSettings,
  type ApplianceStateFile,
} from "./state-file.js";

export type { DirectiveKind } from "./messages.js";

/** A pino-compatible subset; pass a pino logger or anything with these methods. */
export interface ApplianceLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** Options of {@link createAppliance}. */
export interface ApplianceOptions {
  /** `https://host:port` of licensing (its ApplianceService). */
  readonly baseUrl: string;
  /** The control plane's CA (PEM): the server certificate must chain to it. */
  readonly caPem: string;
  readonly licenseId: string;
  /** The licence token (typ license+jwt) the box was shipped with. */
  readonly licenseToken: string;
  /** The box's hardware fingerprint (1 to 512 bytes of UTF-8). */
  readonly fingerprint: string;
  /** Path of the state file (created with mode 0600; it holds the private key). */
  readonly stateFile: string;
  /** The token issuer to pin: leases from any other issuer are refused. */
  readonly issuer: string;
  /** SPIFFE trust domain of the appliance identity. Default `lcp.local`. */
  readonly trustDomain?: string;
  /** Reported in hello and Activate. */
  readonly agentVersion?: string;
  /** The box's clock, epoch ms. Default `Date.now`. */
  readonly clock?: () => number;
  /** Timers; inject with `clock` so a test controls both. Default the host's timers. */
  readonly scheduler?: Scheduler;
  /** Randomness for backoff jitter (0 ≤ r < 1). Default `Math.random`. */
  readonly random?: () => number;
  /** Reconnect backoff. Default 1 s doubling to 60 s, full jitter. */
  readonly backoff?: Partial<BackoffOptions>;
  readonly logger?: ApplianceLogger;
  /**
   * Replaces the network transport for every call (tests: `createRouterTransport`). Without it the
   * SDK builds TLS transports itself: server-authenticated for Activate, mTLS afterwards.
   */
  readonly transport?: Transport;
  /**
   * "2" (default): gRPC over HTTP/2 and the Heartbeat stream. "1.1": Connect over HTTP/1.1 for
   * boxes behind proxies that cannot do HTTP/2; `start()` then polls the unary SendHeartbeat.
   */
  readonly httpVersion?: "2" | "1.1";
  /** Longest gap between two local evaluations (clock-tamper detection latency). Default 1 s. */
  readonly evaluateEveryMs?: number;
  /** Deadline of unary calls (Activate, SendHeartbeat). Default 30 s. */
  readonly callTimeoutMs?: number;
  /**
   * How old the heartbeat connection's TLS session ticket may grow while the stream is held before
   * a fresh one is fetched on a short connection of its own (one full handshake), so that after a
   * restart of licensing the box resumes TLS instead of redoing the full handshake. Node issues
   * tickets on full handshakes only and they live 7 days at most. Default 1 day (plus up to half
   * of it at random, so a fleet that connected together does not refresh together); 0 turns it off.
   */
  readonly ticketRefreshMs?: number;
  /**
   * How long the box keeps running on a lease whose signing key left the key set while it asks for
   * a fresh one (key-set.ts); with none by then, the lease is dropped (LOCKED, NO_LEASE). Default 2 min.
   */
  readonly leaseReplacementMs?: number;
}

/** The box's verdict on itself. */
export interface ApplianceStateView {
  readonly state: ApplianceState;
  /** Set when LOCKED. */
  readonly reason?: ApplianceLockReason;
}

/** Payload of the "state" event. */
export interface StateChangeEvent extends ApplianceStateView {
  /** The state before, or null on the first evaluation. */
  readonly previous: ApplianceStateView | null;
  /** The box's clock at the change. */
  readonly at: number;
}

/** Payload of the "lease-rejected" event: a lease the box refused to run on. */
export interface LeaseRejectedEvent {
  readonly code: LeaseRejectionCode;
  readonly message: string;
  /** The seq the (untrusted) token claims, when readable. */
  readonly seq?: number;
  /** The directive that carried it. */
  readonly directiveId?: string;
}

/** Payload of the "lease-replacing" event: the lease's signing key left the key set; a fresh lease is asked for. */
export interface LeaseReplacingEvent {
  /** The retired key that signed the lease. */
  readonly keyId?: string;
  /** The box's clock at which the lease is dropped if no fresh one came. */
  readonly deadline: number;
  readonly message: string;
}

/** Payload of the "license-renewed" event: the licence ids before and after. */
export interface LicenseRenewedEvent {
  readonly from: string;
  readonly to: string;
}

/** Payload of the "directive" event. */
export interface DirectiveEvent {
  readonly id: string;
  readonly type: DirectiveKind;
  readonly reason: string;
  /**
   * applied: acted on and acked; duplicate: already applied (acked again); ignored: not applied,
   * not acked (redelivered on reconnect); discarded: can never apply (a certificate for a key the
   * box no longer holds — the late answer to a CSR it has since replaced), acked so the control
   * plane stops redelivering it.
   */
  readonly outcome: "applied" | "duplicate" | "ignored" | "discarded";
}

/** The events an {@link Appliance} emits. */
export interface ApplianceEvents {
  [event: string]: (payload: never) => void;
  state: (event: StateChangeEvent) => void;
  "lease-rejected": (event: LeaseRejectedEvent) => void;
  /** The state holds on the current lease while a fresh one replaces it (no "state" change). */
  "lease-replacing": (event: LeaseReplacingEvent) => void;
  directive: (event: DirectiveEvent) => void;
  /** The deployment's licence was renewed and the box adopted a lease of the new one. */
  "license-renewed": (event: LicenseRenewedEvent) => void;
  /** Anything that went wrong in the background (failed beat, write error); the loop carries on. */
  error: (error: Error) => void;
}

/** A snapshot for dashboards and the simulator. */
export interface ApplianceStatus extends ApplianceStateView {
  readonly activated: boolean;
  /** The licence the box runs under now: the configured one, or a renewal of it adopted from a lease. */
  readonly licenseId: string;
  readonly deploymentId: string | null;
  /** A healthy stream (or a recent successful unary beat) right now. */
  readonly connected: boolean;
  readonly leaseSeq: number | null;
  /** Lease expiry, epoch ms. */
  readonly leaseExpiresAt: number | null;
  /** Set while the lease's signing key has left the key set: when it is dropped if no fresh lease came. */
  readonly leaseReplaceBy: number | null;
  readonly heartbeatIntervalMs: number;
  readonly watermark: number;
}

/** What `activate()` returns. */
export interface ActivationResult {
  readonly deploymentId: string;
  readonly spiffeId: string;
  readonly leaseSeq: number;
  readonly state: ApplianceStateView;
}

/** What `sendHeartbeatOnce()` resolves to; it never rejects. */
export type UnaryHeartbeatResult =
  | { readonly ok: true; readonly state: ApplianceStateView; readonly directives: number }
  | { readonly ok: false; readonly state: ApplianceStateView; readonly error: Error };

/** Activation failed; `code` is the server's ErrorInfo reason (e.g. LICENSE_REVOKED) or a local check. */
export class ActivationError extends Error {
  override name = "ActivationError";
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** An activated-or-not appliance. Create with {@link createAppliance}. */
export interface Appliance {
  readonly licenseId: string;
  /** Whether a certificate and lease are held (from the state file or `activate()`). */
  isActivated(): boolean;
  /**
   * Generates a P-256 key and CSR for `spiffe://<td>/appliance/<dep>`, calls Activate over
   * server-authenticated TLS, verifies the returned lease against the returned JWKS and stores
   * everything in the state file. A box may activate again (reinstall).
   * @throws ActivationError (server refusal, bad response) or StateFileError (cannot write).
   */
  activate(): Promise<ActivationResult>;
  /** Holds the heartbeat stream (reconnecting with backoff) and runs the local evaluation timer. Idempotent. */
  start(): void;
  /** Drops the stream and stops reconnecting, but keeps evaluating offline (GRACE → LOCKED). */
  disconnect(): Promise<void>;
  /** Stops everything and writes the state file one last time. */
  stop(): Promise<void>;
  /** The offline evaluation now (ACTIVE, GRACE, SUSPENDED, LOCKED + reason). */
  state(): ApplianceStateView;
  /** A snapshot with the lease, connection and settings. */
  status(): ApplianceStatus;
  /** One unary SendHeartbeat (for HTTP/1.1-only boxes): applies its directives, acks them on the next call. */
  sendHeartbeatOnce(): Promise<UnaryHeartbeatResult>;
  /** Subscribes to an event; returns the unsubscribe function. */
  on<K extends keyof ApplianceEvents>(event: K, listener: ApplianceEvents[K]): () => void;
  off<K extends keyof ApplianceEvents>(event: K, listener: ApplianceEvents[K]): void;
}

type HeartbeatRequestInit = MessageInitShape<typeof HeartbeatRequestSchema>;

const DEFAULT_AGENT_VERSION = "lcp-appliance-sdk/0.0.0";
// How many applied directive ids are remembered, so a redelivery is acked, not re-applied.
const REMEMBERED_DIRECTIVES = 64;
// How many superseded licence ids the state file keeps (each still names it on load).
const MAX_PREVIOUS_LICENSES = 16;
// A stream with no server message for this many intervals is presumed dead (half-open TCP).
const SILENT_INTERVALS = 3;
// A day: tickets then stay far inside their 7-day lifetime, for one full handshake a box a day.
const DEFAULT_TICKET_REFRESH_MS = 86_400_000;
// A certificate is renewed once less than this share of its lifetime is left.
const RENEW_CERTIFICATE_AT = 1 / 3;

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

interface StreamContext {
  send(message: HeartbeatRequestInit): void;
  rescheduleBeat(): void;
  /**
   * Sends a CertificateRenewal (new key + CSR) on this stream, or joins the one already sent on
   * it. Resolves true once the CSR is queued on a still-open stream.
   */
  requestCertificateRenewal(): Promise<boolean>;
  /** Ends this stream after its queued messages are taken, and reconnects at once. */
  reconnectNow(): void;
}

class ApplianceImpl implements Appliance {
  readonly licenseId: string;
  private readonly clock: () => number;
  private readonly scheduler: Scheduler;
  private readonly random: () => number;
  private readonly backoff: BackoffOptions;
  private readonly log: ApplianceLogger;
  private readonly events: TypedEmitter<ApplianceEvents>;
  private readonly evaluateEveryMs: number;
  private readonly callTimeoutMs: number;
  private readonly leaseReplacementMs: number;
  /** A unary box beats again at once to be given a fresh lease (the stream reconnects instead). */
  private askLeaseNow = false;

  private st: ApplianceStateFile | null = null;
  private lease: ApplianceLease | null = null;
  private appliedIds: string[] = [];
  private streamHealthy = false;
  private lastContactAt: number | null = null;
  private lastReported: ApplianceStateView | null = null;

  private running = false;
  private evalTimer: TimerHandle | null = null;
  private loop: Promise<void> | null = null;
  private loopAbort: AbortController | null = null;
  private stream: StreamContext | null = null;

  private writing: Promise<void> | null = null;
  private dirty = false;
  private persistedWatermark = 0;
  private certRenewalRequestedAt: number | null = null;
  /** The heartbeat connection's last TLS session ticket, offered on every redial. */
  private readonly tickets: SessionTicketCache;
  private readonly ticketRefreshMs: number;

  constructor(private readonly options: ApplianceOptions) {
    this.licenseId = options.licenseId;
    this.clock = options.clock ?? Date.now;
    this.scheduler = options.scheduler ?? realScheduler;
    this.random = options.random ?? Math.random;
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.log = options.logger ?? noopLogger;
    this.evaluateEveryMs = Math.max(1, options.evaluateEveryMs ?? 1_000);
    this.callTimeoutMs = options.callTimeoutMs ?? 30_000;
    this.leaseReplacementMs = options.leaseReplacementMs ?? DEFAULT_LEASE_REPLACEMENT_MS;
    this.tickets = new SessionTicketCache(this.clock);
    this.ticketRefreshMs = options.ticketRefreshMs ?? DEFAULT_TICKET_REFRESH_MS;
    this.events = createEmitter<ApplianceEvents>((error, event) => {
      this.log.error({ err: error, event }, "appliance event listener threw");
    });
  }

  // ---------------------------------------------------------------- loading and persistence

  async load(): Promise<void> {
    const path = this.options.stateFile;
    const stored = readStateFile(path);
    if (stored === null) return;
    // A host keeps the licence id it was installed with in its configuration; after a renewal
    // the box runs under the newer licence, and either id names this state file.
    if (stored.licenseId !== this.options.licenseId && !stored.previousLicenseIds?.includes(this.options.licenseId)) {
      throw new StateFileError(path, `belongs to licence ${stored.licenseId}, not ${this.options.licenseId}; use another state file or delete it and activate again`);
    }
    // The file could have been edited to stretch the lease; only a lease that still verifies
    // against the stored keys is believed.
    const jwks = storedLeaseKeys(stored);
    const verdict = await recheckStoredLease(stored.leaseToken, {
      jwks,
      issuer: this.options.issuer,
      licenseId: stored.licenseId,
      deploymentId: stored.deploymentId,
      fingerprint: this.options.fingerprint,
      highestSeq: stored.highestLeaseSeq,
    });
    // A lease whose key a REFRESH_KEYS removed was dropped on purpose at the end of its replacement
    // window (key-set.ts): the box runs without one until it is given a fresh one. A window still
    // open resumes with its stored deadline (refresh() ends it). Any other failure is tampering.
    const dropped = !verdict.ok && verdict.code === "TOKEN_UNKNOWN_KEY" && !signedByKeyOf(stored.leaseToken, jwks);
    if (!verdict.ok && !dropped) throw new StateFileError(path, `stored lease does not verify (${verdict.code}: ${verdict.message}); delete the file and activate again`);
    this.st = stored;
    this.lease = verdict.ok ? toApplianceLease(verdict.claims) : null;
    this.appliedIds = [];
    this.persistedWatermark = stored.watermark;
  }

  /** Queues a write of the current state; concurrent requests coalesce into one more write. */
  private persist(): Promise<void> {
    this.dirty = true;
    if (!this.writing) {
      this.writing = this.drainWrites().finally(() => {
        this.writing = null;
      });
    }
    return this.writing;
  }

  private async drainWrites(): Promise<void> {
    while (this.dirty && this.st) {
      this.dirty = false;
      const snapshot: ApplianceStateFile = JSON.parse(JSON.stringify(this.st)) as ApplianceStateFile;
      try {
        await writeStateFile(this.options.stateFile, snapshot);
        this.persistedWatermark = Math.max(this.persistedWatermark, snapshot.watermark);
      } catch (error) {
        this.reportError(new StateFileError(this.options.stateFile, "could not be written", { cause: error }));
      }
    }
  }

  // ---------------------------------------------------------------- evaluation

  private settings(): ApplianceRuntimeSettings {
    return (
      this.st?.settings ?? {
        heartbeatIntervalMs: DEFAULT_SETTINGS.heartbeatIntervalMs,
        graceWindowMs: DEFAULT_SETTINGS.graceWindowMs,
        maxClockSkewMs: DEFAULT_SETTINGS.maxClockSkewMs,
      }
    );
  }

  private isConnected(now: number): boolean {
    if (this.streamHealthy) return true;
    // A unary box (or one that just activated) counts as connected while its last successful call
    // is within two intervals; a streaming box is connected exactly while its stream is healthy.
    return this.lastContactAt !== null && now - this.lastContactAt <= 2 * this.settings().heartbeatIntervalMs;
  }

  private evaluate(): ApplianceStateView & { watermark: number } {
    const now = this.clock();
    const st = this.st;
    const lease = this.lease && st?.suspendedByDirective ? { ...this.lease, st: "SUSPENDED" as const } : this.lease;
    const result = evaluateApplianceState({
      lease,
      lockedByDirective: st?.lockedByDirective ?? false,
      revoked: st?.revoked ?? false,
      now,
      watermark: st?.watermark ?? 0,
      connected: this.isConnected(now),
      maxClockSkewMs: this.settings().maxClockSkewMs,
    });
    if (st) {
      if (result.watermark > st.watermark) st.watermark = result.watermark;
      // Written every half max_clock_skew (at most 60 s) of progress, whether the time came from
      // our clock or a server ack: a power cut then loses less than the tolerated skew, so a box
      // rebooted with its clock set back still trips.
      const every = Math.max(1_000, Math.min(60_000, this.settings().maxClockSkewMs / 2));
      if (st.watermark - this.persistedWatermark >= every) void this.persist();
    }
    return result.reason === undefined
      ? { state: result.state, watermark: result.watermark }
      : { state: result.state, reason: result.reason, watermark: result.watermark };
  }

  /** Re-evaluates, emits "state" on a change, and (while running) schedules the next evaluation. */
  private refresh(): ApplianceStateView {
    this.endReplacementIfDue();
    const { watermark: _, ...view } = this.evaluate();
    const prev = this.lastReported;
    if (!prev || prev.state !== view.state || prev.reason !== view.reason) {
      this.lastReported = view;
      this.events.emit("state", { ...view, previous: prev, at: this.clock() });
    }
    if (this.running) this.scheduleEvaluation();
    return view;
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
    };
  }

  on<K extends keyof ApplianceEvents>(event: K, listener: ApplianceEvents[K]): () => void {
    return this.events.on(event, listener);
  }

  off<K extends keyof ApplianceEvents>(event: K, listener: ApplianceEvents[K]): void {
    this.events.off(event, listener);
  }

  start(): void {
    if (!this.st) throw new Error("appliance is not activated: call activate() first");
    this.running = true;
    this.refresh();
    if (this.loop) return;
    const abort = new AbortController();
    this.loopAbort = abort;
    this.loop = this.connectionLoop(abort.signal)
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
    if (this.st) await this.persist();
  }

  // ---------------------------------------------------------------- activation

  async activate(): Promise<ActivationResult> {
    const opts = this.options;
    const deploymentId = deploymentIdFromLicenseToken(opts.licenseToken);
    const trustDomain = opts.trustDomain ?? DEFAULT_TRUST_DOMAIN;
    const spiffeId = applianceSpiffeId(trustDomain, deploymentId);
    const { keyPem, csrPem } = await generateKeyAndCsr({ spiffeId, commonName: deploymentId });

    let response: ActivateResponse;
    const { transport, close } = this.transport(null);
    try {
      response = await createClient(ApplianceService, transport).activate(
        {
          licenseId: opts.licenseId,
          licenseToken: opts.licenseToken,
          fingerprint: opts.fingerprint,
          csrPem,
          agentVersion: opts.agentVersion ?? DEFAULT_AGENT_VERSION,
        },
        { timeoutMs: this.callTimeoutMs },
      );
    } catch (error) {
      const reason = errorReason(error);
      if (reason === "LICENSE_REVOKED") await this.markRevoked();
      const ce = ConnectError.from(error);
      throw new ActivationError(reason ?? Code[ce.code] ?? "UNKNOWN", `activation refused: ${ce.rawMessage}`, { cause: error });
    } finally {
      close();
    }

    if (response.deploymentId !== deploymentId) {
      throw new ActivationError("DEPLOYMENT_MISMATCH", `control plane activated deployment ${response.deploymentId}, the licence names ${deploymentId}`);
    }
    const jwks = parseJwks(response.jwksJson);
    if (!jwks) throw new ActivationError("JWKS_INVALID", "activation returned no usable JWKS");
    if (!certificateMatchesKey(response.certificatePem, keyPem)) {
      throw new ActivationError("CERTIFICATE_INVALID", "activation returned a certificate that is not for our key");
    }
    const settings = settingsFrom(response.settings);
    const now = this.clock();
    // A reinstall keeps the old state file: its seq floor still applies to the new lease.
    const highestSeq = this.st?.deploymentId === deploymentId ? this.st.highestLeaseSeq : 0;
    const verdict = await checkLease(response.leaseToken, {
      jwks,
      issuer: opts.issuer,
      licenseId: opts.licenseId,
      deploymentId,
      fingerprint: opts.fingerprint,
      highestSeq,
      now,
      maxClockSkewMs: settings.maxClockSkewMs,
    });
    if (!verdict.ok) {
      this.events.emit("lease-rejected", { code: verdict.code, message: verdict.message, ...(verdict.seq === undefined ? {} : { seq: verdict.seq }) });
      throw new ActivationError(verdict.code, `activation returned a lease the box cannot accept: ${verdict.message}`);
    }
    const lease = toApplianceLease(verdict.claims);
    const serverTime = response.serverTime ? timestampDate(response.serverTime).getTime() : 0;
    this.st = {
      version: STATE_FILE_VERSION,
      licenseId: opts.licenseId,
      deploymentId,
      certificatePem: response.certificatePem,
      privateKeyPem: keyPem,
      certificateChainPem: [...response.certificateChainPem],
      pendingPrivateKeyPem: null,
      leaseToken: response.leaseToken,
      highestLeaseSeq: lease.seq,
      jwks,
      settings,
      watermark: Math.max(this.st?.watermark ?? 0, serverTime, lease.iat),
      // The control plane just accepted the box: any earlier local lock or suspension is stale.
      lockedByDirective: false,
      suspendedByDirective: false,
      revoked: false,
      pendingAcks: [],
    };
    this.lease = lease;
    this.appliedIds = [];
    this.lastContactAt = now;
    // Activation must not report success unless the box can survive a reboot: write strictly.
    await this.writing;
    await writeStateFile(opts.stateFile, this.st);
    this.persistedWatermark = this.st.watermark;
    this.log.info({ deploymentId, leaseSeq: lease.seq }, "appliance activated");
    return { deploymentId, spiffeId, leaseSeq: lease.seq, state: this.refresh() };
  }

  private async markRevoked(): Promise<void> {
    if (!this.st || this.st.revoked) return;
    this.st.revoked = true;
    await this.persist();
    this.refresh();
  }

  // ---------------------------------------------------------------- transports

  /**
   * A transport for one connection attempt and the function that closes it. Each attempt gets
   * its own HTTP/2 session (or HTTPS agent), so a reconnect never reuses a dead socket, a
   * renewed certificate takes effect, and stop() leaves nothing open that keeps the host alive.
   */
  private transport(identity: { certPem: string; keyPem: string } | null): { transport: Transport; close: () => void } {
    if (this.options.transport) return { transport: this.options.transport, close: () => {} };
    const tls = {
      ca: this.options.caPem,
      ...(identity ? { cert: identity.certPem, key: identity.keyPem } : {}),
    };
    if (this.options.httpVersion === "1.1") {
      const agent = new HttpsAgent({ keepAlive: true, ...tls });
      return {
        transport: createConnectTransport({ baseUrl: this.options.baseUrl, httpVersion: "1.1", nodeOptions: { agent } }),
        close: () => agent.destroy(),
      };
    }
    // With an identity (the heartbeat stream), redial with the last session ticket: after a restart
    // of licensing the box resumes TLS, sparing the server a full handshake per box in the storm.
    const sessionManager = new Http2SessionManager(
      this.options.baseUrl,
      {},
      identity ? { ...tls, createConnection: resumingConnection(tls, identity.certPem, this.tickets) } : tls,
    );
    return {
      transport: createGrpcTransport({ baseUrl: this.options.baseUrl, sessionManager }),
      close: () => sessionManager.abort(),
    };
  }

  private identity(): { certPem: string; keyPem: string } {
    const st = this.st;
    if (!st) throw new Error("appliance is not activated");
    return { certPem: st.certificatePem, keyPem: st.privateKeyPem };
  }

  // ---------------------------------------------------------------- the connection loop

  private setStreamHealthy(healthy: boolean): void {
    if (this.streamHealthy === healthy) return;
    this.streamHealthy = healthy;
    this.refresh();
  }

  private sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const timer = this.scheduler.setTimeout(() => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      const onAbort = () => {
        this.scheduler.clearTimeout(timer);
        resolve();
      };
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  /**
   * Connects, holds the stream (or polls the unary call), and on any failure waits a jittered,
   * growing delay and tries again — for as long as the appliance runs. Nothing escapes it: the
   * box's licence must never be the reason its host process dies.
   */
  private async connectionLoop(signal: AbortSignal): Promise<void> {
    let attempt = 0;
    const markHealthy = () => {
      attempt = 0;
    };
    while (!signal.aborted) {
      let reconnectNow = false;
      let replaced = false;
      try {
        if (this.options.httpVersion === "1.1") await this.pollUnary(signal, markHealthy);
        else reconnectNow = await this.holdStream(signal, markHealthy);
      } catch (error) {
        if (!signal.aborted) {
          const reason = errorReason(error);
          if (reason === "LICENSE_REVOKED") await this.markRevoked();
          replaced = reason === "STREAM_REPLACED";
          if (replaced) this.log.warn({}, "heartbeat stream replaced by a newer one of this deployment; is another process using this certificate?");
          this.reportError(error);
        }
      }
      this.setStreamHealthy(false);
      if (signal.aborted) break;
      if (reconnectNow) continue;
      const delay = replaced ? replacedDelay(this.backoff, this.random) : backoffDelay(attempt++, this.backoff, this.random);
      this.log.debug({ delayMs: delay, attempt }, "heartbeat reconnect scheduled");
      await this.sleep(delay, signal);
    }
  }

  /** Holds one Heartbeat stream until it ends. Returns true when it should reconnect at once. */
  private async holdStream(signal: AbortSignal, markHealthy: () => void): Promise<boolean> {
    const st = this.st;
    if (!st) throw new Error("appliance is not activated");
    const streamAbort = new AbortController();
    const onLoopAbort = () => streamAbort.abort();
    signal.addEventListener("abort", onLoopAbort, { once: true });
    const outbox: Outbox<HeartbeatRequestInit> = createOutbox();
    const { transport, close } = this.transport(this.identity());
    let beatTimer: TimerHandle | null = null;
    let watchdog: TimerHandle | null = null;
    let ticketTimer: TimerHandle | null = null;
    let nonce = 0n;
    let reconnectNow = false;
    let gotMessage = false;
    let renewalChecked = false;
    // At most one CSR per stream, whoever asks (expiry check or operator directive): the server
    // answers each with a certificate and ends a stream that asks too often.
    let renewal: Promise<boolean> | null = null;
    const requestCertificateRenewal = () => {
      renewal ??= this.sendCertificateRenewal(outbox, streamAbort.signal);
      return renewal;
    };

    const sendBeat = () => {
      nonce += 1n;
      outbox.push({ kind: { case: "beat", value: { boxTime: timestampFromMs(this.clock()), nonce } } });
      if (!renewalChecked) {
        renewalChecked = true;
        if (this.certificateRenewalDue()) void requestCertificateRenewal().catch((error: unknown) => this.reportError(error));
      }
    };
    const scheduleBeat = () => {
      if (beatTimer !== null) this.scheduler.clearTimeout(beatTimer);
      beatTimer = this.scheduler.setTimeout(() => {
        beatTimer = null;
        sendBeat();
        scheduleBeat();
      }, this.settings().heartbeatIntervalMs);
    };
    // While the stream is held, keep a ticket young enough to resume with after a server restart.
    const scheduleTicketRefresh = () => {
      const every = this.ticketRefreshMs;
      if (every <= 0 || this.options.transport || this.options.httpVersion === "1.1") return;
      const identity = this.identity();
      const now = this.clock();
      // No ticket kept (a server that issues none): wait a whole period rather than retry at once.
      const receivedAt = this.tickets.receivedAt(identity.certPem) ?? now;
      const delay = Math.max(0, receivedAt + every - now) + this.random() * (every / 2);
      ticketTimer = this.scheduler.setTimeout(() => {
        ticketTimer = null;
        const tls = { ca: this.options.caPem, cert: identity.certPem, key: identity.keyPem };
        void refreshTicket(this.options.baseUrl, tls, identity.certPem, this.tickets).then((kept) => {
          this.log.debug({ kept }, "TLS session ticket refreshed");
          if (!streamAbort.signal.aborted) scheduleTicketRefresh();
        });
      }, delay);
    };
    const armWatchdog = () => {
      if (watchdog !== null) this.scheduler.clearTimeout(watchdog);
      watchdog = this.scheduler.setTimeout(() => {
        this.log.warn({}, "heartbeat stream silent; reconnecting");
        streamAbort.abort();
      }, SILENT_INTERVALS * this.settings().heartbeatIntervalMs);
    };

    this.stream = {
      send: (m) => outbox.push(m),
      rescheduleBeat: () => {
        scheduleBeat();
        armWatchdog();
      },
      requestCertificateRenewal,
      reconnectNow: () => {
        reconnectNow = true;
        void outbox.drained().then(() => streamAbort.abort());
      },
    };

    outbox.push({
      kind: {
        case: "hello",
        value: {
          licenseId: st.licenseId,
          fingerprint: this.options.fingerprint,
          lastLeaseSeq: this.reportedLeaseSeq(),
          agentVersion: this.options.agentVersion ?? DEFAULT_AGENT_VERSION,
          keyIds: keyIdsOf(st.jwks),
        },
      },
    });
    // Acks owed from unary calls or an earlier stream; the server redelivers anyway, but an ack
    // spares it that work.
    if (st.pendingAcks.length > 0) {
      outbox.push({ kind: { case: "ack", value: { directiveIds: [...st.pendingAcks] } } });
      st.pendingAcks = [];
      void this.persist();
    }
    // The first beat goes out at once, so the box knows within one round trip whether it is online.
    sendBeat();
    scheduleBeat();
    armWatchdog();

    try {
      const client = createClient(ApplianceService, transport);
      for await (const response of client.heartbeat(outbox, { signal: streamAbort.signal })) {
        armWatchdog();
        if (!gotMessage) {
          gotMessage = true;
          markHealthy();
          this.setStreamHealthy(true);
          scheduleTicketRefresh();
        }
        await this.handleResponse(response, (ids) => outbox.push({ kind: { case: "ack", value: { directiveIds: ids } } }));
      }
    } catch (error) {
      // Our own abort (stop, silence, reconnect for a new certificate) is not an error.
      if (!(streamAbort.signal.aborted && ConnectError.from(error).code === Code.Canceled)) throw error;
    } finally {
      this.stream = null;
      if (beatTimer !== null) this.scheduler.clearTimeout(beatTimer);
      if (watchdog !== null) this.scheduler.clearTimeout(watchdog);
      if (ticketTimer !== null) this.scheduler.clearTimeout(ticketTimer);
      signal.removeEventListener("abort", onLoopAbort);
      outbox.close();
      streamAbort.abort();
      close();
    }
    return reconnectNow;
  }

  /** HTTP/1.1 mode: one SendHeartbeat per interval; a failure throws to the loop's backoff. */
  private async pollUnary(signal: AbortSignal, markHealthy: () => void): Promise<void> {
    while (!signal.aborted) {
      await this.unaryBeat();
      markHealthy();
      const soon = this.askLeaseNow;
      this.askLeaseNow = false;
      await this.sleep(soon ? 0 : this.settings().heartbeatIntervalMs, signal);
    }
  }

  async sendHeartbeatOnce(): Promise<UnaryHeartbeatResult> {
    try {
      const directives = await this.unaryBeat();
      return { ok: true, state: this.refresh(), directives };
    } catch (error) {
      const err = error instanceof Error ? error : new Error(String(error));
      if (errorReason(error) === "LICENSE_REVOKED") await this.markRevoked().catch(() => {});
      this.reportError(err);
      return { ok: false, state: this.refresh(), error: err };
    }
  }

  private async unaryBeat(): Promise<number> {
    const st = this.st;
    if (!st) throw new Error("appliance is not activated: call activate() first");
    const acked = [...st.pendingAcks];
    const { transport, close } = this.transport(this.identity());
    let response;
    try {
      response = await createClient(ApplianceService, transport).sendHeartbeat(
        {
          licenseId: st.licenseId,
          fingerprint: this.options.fingerprint,
          lastLeaseSeq: this.reportedLeaseSeq(),
          agentVersion: this.options.agentVersion ?? DEFAULT_AGENT_VERSION,
          boxTime: timestampFromMs(this.clock()),
          ackedDirectiveIds: acked,
          keyIds: keyIdsOf(st.jwks),
        },
        { timeoutMs: this.callTimeoutMs },
      );
    } finally {
      close();
    }
    // The server has them now; keep only acks added while the call was in flight.
    st.pendingAcks = st.pendingAcks.filter((id) => !acked.includes(id));
    this.lastContactAt = this.clock();
    if (response.serverTime) this.raiseWatermark(timestampDate(response.serverTime).getTime());
    for (const directive of response.directives) {
      await this.applyDirective(directive, (ids) => st.pendingAcks.push(...ids));
    }
    // Only a change of acks needs a write here (directives persist themselves; the watermark is
    // throttled in evaluate), so a polling box does not rewrite its file every interval.
    if (acked.length > 0 || response.directives.length > 0) await this.persist();
    this.refresh();
    return response.directives.length;
  }

  // ---------------------------------------------------------------- messages from the server

  private raiseWatermark(serverTime: number): void {
    const st = this.st;
    if (!st || !(serverTime > st.watermark)) return;
    st.watermark = serverTime;
  }

  private async handleResponse(response: HeartbeatResponse, ack: (ids: string[]) => void): Promise<void> {
    switch (response.kind.case) {
      case "ack": {
        const serverTime = response.kind.value.serverTime;
        if (serverTime) this.raiseWatermark(timestampDate(serverTime).getTime());
        this.refresh();
        return;
      }
      case "directive":
        await this.applyDirective(response.kind.value, ack);
        return;
      default:
        return;
    }
  }

  /**
   * Applies one directive and acks it if applied. A directive comes over TLS from the control
   * plane (its certificate chains to the pinned CA), but a lease it carries is believed only if
   * its signature, typ, issuer, licence, deployment, fingerprint and seq all check out.
   */
  private async applyDirective(directive: Directive, ack: (ids: string[]) => void): Promise<void> {
    const st = this.st;
    if (!st) return;
    const type = directiveKind(directive.type);
    const emit = (outcome: DirectiveEvent["outcome"]) =>
      this.events.emit("directive", { id: directive.id, type, reason: directive.reason, outcome });

    if (directive.id !== "" && this.appliedIds.includes(directive.id)) {
      ack([directive.id]);
      emit("duplicate");
      return;
    }
    let applied = false;
    let discarded = false;
    let reconnect = false;
    let leaseOk: boolean | null = null;
    if (directive.leaseToken !== "") leaseOk = await this.acceptLease(directive.leaseToken, directive.id);

    switch (directive.type) {
      case DirectiveType.LOCK:
        st.lockedByDirective = true;
        applied = true;
        break;
      case DirectiveType.SUSPEND:
        // Suspending is the safe direction, so it applies even if an attached lease was refused.
        st.suspendedByDirective = true;
        applied = true;
        break;
      case DirectiveType.REACTIVATE:
        // Lifts the local locks only; a SUSPENDED lease still holds until a newer lease replaces
        // it, so an unsigned message alone can never turn a suspended box back on.
        st.lockedByDirective = false;
        st.suspendedByDirective = false;
        applied = true;
        break;
      case DirectiveType.RENEW_LEASE:
        applied = leaseOk === true;
        break;
      case DirectiveType.REFRESH_KEYS: {
        const jwks = parseJwks(directive.jwksJson);
        if (jwks) {
          reconnect = this.adoptKeys(jwks);
          applied = true;
        } else this.reportError(new Error(`directive ${directive.id}: REFRESH_KEYS without a usable JWKS; ignored`));
        break;
      }
      case DirectiveType.SET_INTERVAL: {
        const ms = directive.heartbeatInterval ? durationMs(directive.heartbeatInterval) : NaN;
        const range = HEARTBEAT_INTERVAL_RANGE_MS;
        if (Number.isFinite(ms) && ms >= range.min && ms <= range.max) {
          st.settings = { ...st.settings, heartbeatIntervalMs: ms };
          this.stream?.rescheduleBeat();
          applied = true;
        } else this.reportError(new Error(`directive ${directive.id}: SET_INTERVAL out of range; ignored`));
        break;
      }
      case DirectiveType.RENEW_CERTIFICATE:
        if (directive.certificatePem === "") {
          // An operator's request: the server cannot issue without our CSR, so renew as on expiry.
          // Acked once the CSR is on the stream, not when the certificate comes: the certificate
          // arrives as its own RENEW_CERTIFICATE (stored and redelivered by the server until acked,
          // its key kept in the state file), so this directive's part is done, and holding its ack
          // across reconnects would redeliver it and ask for yet another certificate each time.
          applied = await this.renewCertificateOnRequest(directive.id);
        } else {
          const verdict = this.acceptCertificate(directive);
          applied = verdict === "adopted";
          discarded = verdict === "discard";
          reconnect = applied;
        }
        break;
      default:
        this.reportError(new Error(`directive ${directive.id}: unknown type ${directive.type}; ignored`));
    }

    // A directive without an id is a statement of the current truth (the key set, the interval),
    // stored nowhere: there is nothing to acknowledge.
    const acks = directive.id === "" ? [] : [directive.id];
    if (applied) {
      this.remember(directive.id);
      await this.persist();
      if (acks.length > 0) ack(acks);
      emit("applied");
      this.refresh();
      if (reconnect) this.stream?.reconnectNow();
    } else if (discarded) {
      this.remember(directive.id);
      ack([directive.id]);
      emit("discarded");
    } else {
      if (leaseOk === true) await this.persist();
      emit("ignored");
    }
  }

  /**
   * Adopts a new key set (key-set.ts). Returns true when the lease was signed by a key the set no
   * longer holds: the box keeps its state on it for the replacement window and must reconnect at
   * once to be given a fresh one.
   */
  private adoptKeys(jwks: JSONWebKeySet): boolean {
    const st = this.st;
    if (!st || adoptKeySet(st, jwks, this.lease !== null, this.clock(), this.leaseReplacementMs) !== "replacing") return false;
    const { deadline, key } = st.leaseReplacement!;
    const message = "the lease was signed by a key no longer in the control plane's key set; running on it while a fresh lease is asked for";
    this.log.warn({ seq: st.highestLeaseSeq, kid: key.kid, deadline }, message);
    this.events.emit("lease-replacing", { ...(key.kid === undefined ? {} : { keyId: key.kid }), deadline, message });
    this.askLeaseNow = true;
    return true;
  }

  /** The replacement window closed with no fresh lease: drop the lease (LOCKED, NO_LEASE). */
  private endReplacementIfDue(): void {
    const st = this.st;
    if (!st || !replacementExpired(st, this.clock())) return;
    delete st.leaseReplacement;
    this.lease = null;
    void this.persist();
    const message = `no fresh lease came within ${this.leaseReplacementMs} ms of its signing key leaving the key set; running without a lease`;
    this.log.warn({ seq: st.highestLeaseSeq }, message);
    this.events.emit("lease-rejected", { code: "TOKEN_UNKNOWN_KEY", message, seq: st.highestLeaseSeq });
  }

  /** The seq the box reports holding: 0 without a lease it trusts (or one being replaced), so the server signs a fresh one. */
  private reportedLeaseSeq(): bigint {
    return this.lease === null || this.st?.leaseReplacement ? 0n : BigInt(this.st?.highestLeaseSeq ?? 0);
  }

  private remember(id: string): void {
    if (id === "") return;
    this.appliedIds.push(id);
    if (this.appliedIds.length > REMEMBERED_DIRECTIVES) this.appliedIds.shift();
  }

  /** Verifies and adopts a lease; reports and returns false when it is refused. */
  private async acceptLease(token: string, directiveId?: string): Promise<boolean> {
    const st = this.st;
    if (!st) return false;
    // The lease already held, redelivered because our ack was lost: nothing to do, nothing wrong.
    // (Unless its key left the set: then it is checked, and refused, like any other.)
    if (token === st.leaseToken && this.lease !== null && !st.leaseReplacement) return true;
    const verdict = await checkLease(token, {
      jwks: st.jwks,
      issuer: this.options.issuer,
      // No licence pinned: a renewal's lease names the deployment's new licence (see lease.ts).
      deploymentId: st.deploymentId,
      fingerprint: this.options.fingerprint,
      highestSeq: st.highestLeaseSeq,
      now: this.clock(),
      maxClockSkewMs: st.settings.maxClockSkewMs,
    });
    if (!verdict.ok) {
      this.log.warn({ code: verdict.code, seq: verdict.seq, directiveId }, "lease rejected");
      this.events.emit("lease-rejected", {
        code: verdict.code,
        message: verdict.message,
        ...(verdict.seq === undefined ? {} : { seq: verdict.seq }),
        ...(directiveId ? { directiveId } : {}),
      });
      return false;
    }
    const lease = toApplianceLease(verdict.claims);
    if (verdict.claims.sub !== st.licenseId) this.followRenewedLicense(st, verdict.claims.sub);
    st.leaseToken = token;
    st.highestLeaseSeq = lease.seq;
    delete st.leaseReplacement;
    // A newer signed lease is the control plane's current word on ACTIVE vs SUSPENDED.
    st.suspendedByDirective = false;
    st.watermark = Math.max(st.watermark, lease.iat);
    this.lease = lease;
    return true;
  }

  /** The deployment's licence was renewed (superseded): run under the new one from now on. */
  private followRenewedLicense(st: ApplianceStateFile, licenseId: string): void {
    const from = st.licenseId;
    st.previousLicenseIds = [...(st.previousLicenseIds ?? []).filter((id) => id !== licenseId), from].slice(-MAX_PREVIOUS_LICENSES);
    st.licenseId = licenseId;
    this.log.info({ from, to: licenseId }, "the deployment's licence was renewed; running under the new licence");
    this.events.emit("license-renewed", { from, to: licenseId });
  }

  /**
   * Adopts a renewed certificate if it is for our current key or the key of our pending CSR.
   * One that can never be adopted (unparsable, expired, or for a key the box does not hold — each
   * renewal replaces the pending key, so a late answer to an older CSR matches nothing) is to be
   * discarded: left unacked it would be redelivered on every reconnect for ever. If the box still
   * needs a certificate, its own renewal check asks again.
   */
  private acceptCertificate(directive: Directive): "adopted" | "discard" | "ignore" {
    const st = this.st;
    if (!st) return "ignore";
    const discard = (why: string) => {
      this.reportError(new Error(`directive ${directive.id}: ${why}; discarded`));
      return "discard" as const;
    };
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(directive.certificatePem);
    } catch {
      return discard("RENEW_CERTIFICATE without a parsable certificate");
    }
    if (Date.parse(cert.validTo) <= this.clock()) return discard("renewed certificate already expired");
    const key = [st.pendingPrivateKeyPem, st.privateKeyPem].find((k) => k !== null && certificateMatchesKey(cert, k));
    if (!key) return discard("renewed certificate is not for a key this box holds");
    st.certificatePem = directive.certificatePem;
    st.certificateChainPem = [...directive.certificateChainPem];
    if (key === st.pendingPrivateKeyPem) st.pendingPrivateKeyPem = null;
    st.privateKeyPem = key;
    this.certRenewalRequestedAt = null;
    return "adopted";
  }

  /**
   * Whether the certificate should be renewed: less than a third of its life is left, so the box
   * is never cut off by an expired client certificate while it is online. Checked once per stream
   * and at most once an hour.
   */
  private certificateRenewalDue(): boolean {
    const st = this.st;
    if (!st) return false;
    const now = this.clock();
    if (this.certRenewalRequestedAt !== null && now - this.certRenewalRequestedAt < 3_600_000) return false;
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(st.certificatePem);
    } catch {
      return false;
    }
    const from = Date.parse(cert.validFrom);
    const to = Date.parse(cert.validTo);
    return to - now < (to - from) * RENEW_CERTIFICATE_AT;
  }

  /**
   * Generates a new key and CSR and sends the CSR as `renew_certificate`. The new key is stored
   * first so the answer can be adopted after a reboot. Returns false if the stream ended before
   * the CSR could be queued.
   */
  private async sendCertificateRenewal(outbox: Outbox<HeartbeatRequestInit>, streamSignal: AbortSignal): Promise<boolean> {
    const st = this.st;
    if (!st) return false;
    this.certRenewalRequestedAt = this.clock();
    const spiffeId = applianceSpiffeId(this.options.trustDomain ?? DEFAULT_TRUST_DOMAIN, st.deploymentId);
    const { keyPem, csrPem } = await generateKeyAndCsr({ spiffeId, commonName: st.deploymentId });
    st.pendingPrivateKeyPem = keyPem;
    await this.persist();
    if (streamSignal.aborted) return false;
    outbox.push({ kind: { case: "renewCertificate", value: { csrPem } } });
    this.log.info({ spiffeId }, "client certificate renewal requested");
    return true;
  }

  /** A RENEW_CERTIFICATE without a certificate: renew on the stream; true once the CSR is sent. */
  private async renewCertificateOnRequest(directiveId: string): Promise<boolean> {
    const stream = this.stream;
    if (!stream) {
      // SendHeartbeat (HTTP/1.1) has no field for a CSR: leave it unacked for a streaming connect.
      this.reportError(new Error(`directive ${directiveId}: RENEW_CERTIFICATE needs the heartbeat stream to send a CSR; not applied`));
      return false;
    }
    try {
      if (await stream.requestCertificateRenewal()) return true;
      this.reportError(new Error(`directive ${directiveId}: stream ended before the certificate renewal was sent; not applied`));
    } catch (error) {
      this.reportError(new Error(`directive ${directiveId}: certificate renewal failed`, { cause: error }));
    }
    return false;
  }
}

// ---------------------------------------------------------------- helpers

/**
 * The deployment id from the licence token's `dep` claim, read WITHOUT verifying the token: the
 * box has no keys yet, and it does not need to trust it — the control plane verifies the token and
 * refuses a CSR for the wrong deployment.
 */
export function deploymentIdFromLicenseToken(licenseToken: string): string {
  let dep: unknown;
  try {
    dep = decodeJwt(licenseToken)["dep"];
  } catch {
    throw new ActivationError("LICENSE_TOKEN_MALFORMED", "licence token is not a JWT");
  }
  if (typeof dep !== "string" || !isValidSpiffeName(dep)) {
    throw new ActivationError("LICENSE_TOKEN_MALFORMED", 'licence token has no usable "dep" (deployment id) claim');
  }
  return dep;
}
