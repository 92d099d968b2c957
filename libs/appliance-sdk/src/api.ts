/**
 * The appliance's public surface: its options, the events it emits, the snapshots it returns and
 * the {@link Appliance} interface itself. The behaviour lives in appliance.ts (the shell) and the
 * modules it runs: directives.ts (the pure core), activation.ts, connection.ts, certificate.ts.
 */
import type { ApplianceLockReason, ApplianceState } from "@lcp/domain";
import type { BackoffOptions } from "./backoff.js";
import type { LeaseRejectionCode } from "./lease.js";
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
