/**
 * The appliance's public surface: its options, the events it emits, the snapshots it returns and
 * the {@link Appliance} interface itself. The behaviour lives in appliance.ts (the shell) and the
 * modules it runs: directives.ts (the pure core), activation.ts, connection.ts, certificate.ts.
 */
import type { ApplianceLockReason, ApplianceState } from "@lcp/domain";
import type { BackoffOptions } from "./backoff.js";
import type { LeaseRejectionCode } from "./lease.js";
import type { OfflineFileErrorCode, OfflineRequestKind } from "./offline.js";
import type { OfflineAnswerState, OfflineLockReason } from "@lcp/tokens";
import type { DirectiveKind } from "./messages.js";
import type { Scheduler } from "./scheduler.js";
import type { Transport } from "@connectrpc/connect";

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
  /**
   * `https://host:port` of licensing (its ApplianceService). Left out, the box is air-gapped: it
   * never dials, activates and renews by files (`writeActivationRequest`, `writeRenewalRequest`,
   * `importResponse`), and runs on its lease alone — ACTIVE while it is valid, LOCKED once it
   * expires by the box's clock.
   */
  readonly baseUrl?: string;
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
  /** Reported in hello, Activate and the offline request files. */
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

/** Payload of the "renewal-due" event: an air-gapped box's renewal time has come. */
export interface RenewalDueEvent {
  /** When the control plane asked for the next renewal request (epoch ms). */
  readonly renewAt: number;
  /** When the lease runs out if no renewal is imported (epoch ms). */
  readonly leaseExpiresAt: number | null;
}

/** Payload of the "offline-response-refused" event: a response file `importResponse` refused. */
export interface OfflineResponseRefusedEvent {
  readonly code: OfflineFileErrorCode;
  readonly message: string;
  /** The kind of the pending request the file was checked against, or null when none was pending. */
  readonly kind: OfflineRequestKind | null;
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
  /**
   * An air-gapped box's renewal time (the last response's `ren`) has passed on the box's clock:
   * write a renewal request. Emitted once per response, while the box is started.
   */
  "renewal-due": (event: RenewalDueEvent) => void;
  /** `importResponse` refused a file (it also throws): for the host's log. */
  "offline-response-refused": (event: OfflineResponseRefusedEvent) => void;
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
  /** No `baseUrl`: the box activates and renews by files. */
  readonly airGapped: boolean;
  /** When the control plane asked for the next renewal request (epoch ms); set by imported responses. */
  readonly renewAt: number | null;
  /** The request written and waiting for its response file, if any. */
  readonly pendingRequest: { readonly kind: OfflineRequestKind; readonly createdAt: number } | null;
}

/** What `importResponse()` returns: the response was accepted and adopted. */
export interface OfflineImportResult {
  /** The kind of the request it answered. */
  readonly kind: OfflineRequestKind;
  /** What the control plane said: ACTIVE or SUSPENDED with a lease, or LOCKED. */
  readonly answer: OfflineAnswerState;
  /** Why, when LOCKED: REVOKED (the box is revoked), EXPIRED or REBOUND (the box is locked). */
  readonly lockReason?: OfflineLockReason;
  readonly deploymentId: string;
  /** The seq of the lease the box now runs on, or null without one. */
  readonly leaseSeq: number | null;
  /** When to write the next renewal request (epoch ms), or null. */
  readonly renewAt: number | null;
  /** The box's state after adopting the answer. */
  readonly state: ApplianceStateView;
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
   * @throws ActivationError (server refusal, bad response; code AIR_GAPPED without a `baseUrl`)
   *   or StateFileError (cannot write).
   */
  activate(): Promise<ActivationResult>;
  /**
   * Holds the heartbeat stream (reconnecting with backoff) and runs the local evaluation timer.
   * An air-gapped box only runs the evaluation (and "renewal-due"). Idempotent.
   */
  start(): void;
  /** Drops the stream and stops reconnecting, but keeps evaluating offline (GRACE → LOCKED). */
  disconnect(): Promise<void>;
  /** Stops everything and writes the state file one last time. */
  stop(): Promise<void>;
  /** The offline evaluation now (ACTIVE, GRACE, SUSPENDED, LOCKED + reason). */
  state(): ApplianceStateView;
  /** A snapshot with the lease, connection and settings. */
  status(): ApplianceStatus;
  /**
   * One unary SendHeartbeat (for HTTP/1.1-only boxes): applies its directives, acks them on the
   * next call. Resolves with failures; rejects only on an air-gapped box (OfflineFileError AIR_GAPPED).
   */
  sendHeartbeatOnce(): Promise<UnaryHeartbeatResult>;
  /**
   * Air-gapped activation, step 1: generates a P-256 key and CSR (as `activate()` does) and returns
   * the activation request file (one line of text) for the operator to carry to the control plane.
   * The request waits, key included, in `<stateFile>.pending-request` (mode 0600) across reboots;
   * writing another request replaces it, and the answer to the replaced one no longer imports.
   * @throws ActivationError (licence token without a deployment) or StateFileError (cannot write).
   */
  writeActivationRequest(): Promise<string>;
  /**
   * Air-gapped renewal, step 1: the renewal request file, signed with the box's key and carrying
   * its certificate, the highest lease seq it holds and `usage` (counter name → non-negative
   * integer, for the audit trail). Replaces any pending request.
   * @throws OfflineFileError (NOT_ACTIVATED; FILE_CLAIMS_INVALID for a bad usage counter) or StateFileError.
   */
  writeRenewalRequest(usage?: Record<string, number>): Promise<string>;
  /**
   * Step 2: imports the response file to the pending request. It must be signed by licensing's
   * certificate under `caPem`, for this box (fingerprint) and this request (nonce), licence and
   * deployment, with a lease that verifies against the JWKS it carries and is newer than every
   * lease held. Activation writes the state file; renewal adopts the lease and keys; a LOCKED
   * answer revokes (REVOKED) or locks (EXPIRED, REBOUND) the box. Then the pending request is gone.
   * @throws OfflineFileError when refused (also emitted as "offline-response-refused"; the state
   *   and the pending request are untouched, so the right file still imports), StateFileError
   *   when the state cannot be written (nothing is adopted).
   */
  importResponse(file: string): Promise<OfflineImportResult>;
  /** Subscribes to an event; returns the unsubscribe function. */
  on<K extends keyof ApplianceEvents>(event: K, listener: ApplianceEvents[K]): () => void;
  off<K extends keyof ApplianceEvents>(event: K, listener: ApplianceEvents[K]): void;
}
