/**
 * What `createServer` takes and gives: its options (TLS material, trust, limits, the app's
 * services and raw methods) and the running server's handle.
 */
import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import type { ServiceName } from "@lcp/domain";
import type { Logger } from "pino";
import type { AdminTokenVerifierLike, ApplianceCheck } from "./authn.js";
import type { ConnectionLimits } from "./connections.js";
import type { HealthService } from "./health.js";
import type { DeniedEvent } from "./interceptors.js";
import type { RpcMetrics } from "./metrics.js";
import type { Rule } from "./policy.js";
import type { AppliancePrincipal } from "./principal.js";
import type { RawStreamHandler } from "./raw-stream.js";

/** The listener's TLS material, PEM-encoded. */
export interface ServerTls {
  /** The server certificate (chain), presented to every client. */
  readonly certPem: string;
  readonly keyPem: string;
  /** The platform CA(s): trusted for client certificates, the only issuers of service identities. */
  readonly caPem: string;
}

/** How long a TLS handshake may take before the socket is dropped, by default (node's default is 120 s). */
export const HANDSHAKE_TIMEOUT_MS = 10_000;
/** Size of the stored session-ticket secret (node's `ticketKeys`: key name, HMAC key, AES key). */
export const TICKET_SECRET_BYTES = 48;
/**
 * How long a session ticket may be resumed, by default: 7 days, TLS 1.3's maximum (RFC 8446
 * §4.6.1; OpenSSL caps the lifetime it announces there and clients drop older tickets). Node
 * issues no new ticket on a resumed connection, so a box's ticket dates from its last full
 * handshake: a short lifetime (node's default is 300 s) would leave every box that has held its
 * stream for more than that with a stale ticket when the server dies. Resuming re-checks what can
 * change meanwhile (validity dates here; revoked serials and the trust set per call in authn, and
 * the trust set in the ticket key), so the lifetime does not stretch any verdict.
 */
export const DEFAULT_TICKET_LIFETIME_S = 7 * 86_400;

/** TLS session resumption across restarts and replicas: tickets any process with the same secret and trust set accepts. */
export interface SessionTicketOptions {
  /**
   * {@link TICKET_SECRET_BYTES} random bytes, the same across restarts (and replicas). Whoever
   * holds them can mint a ticket naming any client certificate the trust set accepts: guard the
   * file like a private key (0600, never logged).
   */
  readonly secret: Uint8Array;
  /** Seconds a ticket may be resumed after the full handshake that issued it. Default {@link DEFAULT_TICKET_LIFETIME_S}. */
  readonly lifetimeS?: number;
}

/** Options of `createServer`. */
export interface ServerOptions {
  /** The app this server belongs to (its SPIFFE service name); used in logs. */
  readonly name: ServiceName;
  /** Interface to bind; default `"127.0.0.1"`. Use `"::"` or `"0.0.0.0"` to serve the network. */
  readonly host?: string;
  /** TCP port; 0 picks a free one (tests). */
  readonly port: number;
  readonly tls: ServerTls;
  /** The SPIFFE trust domain client identities must belong to (e.g. `lcp.local`). */
  readonly trustDomain: string;
  /** Appliance CA certificates (PEM) whose appliance identities this listener accepts. */
  readonly applianceCa?: readonly string[];
  /**
   * Refuse the TLS handshake without a certificate that chains to a trusted CA, instead of
   * letting the call proceed anonymously. For listeners that serve no public RPC.
   */
  readonly requireClientCertificate?: boolean;
  /** Admin bearer-token verifier; without it this server accepts no admin tokens. */
  readonly adminTokens?: AdminTokenVerifierLike;
  /** Per-call check of appliance certificates (e.g. refuse revoked serials). */
  readonly checkAppliance?: (principal: AppliancePrincipal) => Promise<ApplianceCheck>;
  /**
   * Called for refused calls (apps audit `authz.denied` through their outbox): the first of a kind
   * at once, its repeats within `deniedAuditWindowMs` as one summary (libs/rpc denial-audit.ts).
   */
  readonly onDenied?: (event: DeniedEvent) => void | Promise<void>;
  /** How long repeats of one refusal are counted into one summary. Default 60 s; 0: each refusal alone. */
  readonly deniedAuditWindowMs?: number | undefined;
  /**
   * Recognises a handler error that means a dependency is down for now (pass persistence's
   * `isConnectionError`): answered Unavailable, so clients retry, instead of Internal.
   */
  readonly transientError?: (err: unknown) => boolean;
  /** Default: `createLogger(name)`. */
  readonly logger?: Logger;
  /** Registers the app's services: `router.service(LicensingService, impl)`. */
  readonly register: (router: ConnectRouter) => void;
  /** Largest accepted request message; larger ones answer ResourceExhausted. Default 1 MiB. */
  readonly maxReceiveMessageBytes?: number;
  /** How long `close()` waits for in-flight calls before cutting connections. Default 10 s. */
  readonly shutdownGraceMs?: number;
  /**
   * Session-ticket keys that survive a restart, so clients that kept a ticket resume (no
   * signature, no client chain check) when they redial after a crash. Without it node makes
   * per-process keys: tickets die with the process. The effective key is derived from the secret
   * and the trust set, so `setApplianceTrust` (or a restart with another trust set) invalidates
   * every ticket issued under the old one.
   */
  readonly sessionTickets?: SessionTicketOptions;
  /** How long a TLS handshake may take before the socket is dropped. Default {@link HANDSHAKE_TIMEOUT_MS}. */
  readonly handshakeTimeoutMs?: number;
  /**
   * Streams per connection, idle timeout, keepalive pings (connections.ts); each unset one takes
   * its `DEFAULT_CONNECTION_LIMITS` value.
   */
  readonly connectionLimits?: Partial<ConnectionLimits> | undefined;
  /**
   * Unauthenticated streams (health Watch, reflection) open at once on this server, over all
   * connections; more are answered ResourceExhausted. Default {@link DEFAULT_MAX_PUBLIC_STREAMS}.
   */
  readonly maxPublicStreams?: number | undefined;
  /** Policy table override (tests only); the system `POLICY` otherwise. */
  readonly policy?: Readonly<Record<string, Rule>>;
  /**
   * The metrics served at `GET /metrics`; default `createMetrics({ app: name })`. Pass your own
   * when handlers built inside `register` need their counters before the server exists.
   */
  readonly metrics?: RpcMetrics;
  /**
   * Methods served directly on `node:http2` streams, by path (`/pkg.Service/Method`), for plain
   * binary gRPC requests only; everything else on the path (Connect, gRPC-Web, JSON, compressed)
   * still goes to the Connect stack. Calls are admitted (authn, policy, onDenied) before the
   * handler sees them, and counted for graceful shutdown like any call. See raw-stream.ts.
   */
  readonly rawStreams?: Readonly<Record<string, RawStreamHandler>>;
}

/** What `setTls` serves from now on; `ticketSecret` unset keeps the current one. */
export interface TlsUpdate {
  readonly tls: ServerTls;
  /** A new session-ticket secret ({@link TICKET_SECRET_BYTES} bytes). */
  readonly ticketSecret?: Uint8Array | undefined;
}

/** The leaf certificate `setTls` now serves. */
export interface TlsServed {
  readonly serialNumber: string;
  /** As node prints it (`Jan  1 00:00:00 2027 GMT`). */
  readonly validTo: string;
}

/** A running server. */
export interface RpcServer {
  /** `https://localhost:<port>` (the dev certificates name localhost). */
  readonly url: string;
  readonly port: number;
  /** The health statuses this server reports; apps may mark dependencies NOT_SERVING. */
  readonly health: HealthService;
  /** The services registered by the app (not health/reflection). */
  readonly services: readonly DescService[];
  /**
   * This server's Prometheus registry (served at `GET /metrics`, public like health) with the
   * built-in call metrics; apps add theirs with `metrics.counter/gauge/histogram`.
   */
  readonly metrics: RpcMetrics;
  /**
   * Replaces the trusted appliance CAs, both for new TLS handshakes and for the per-call chain
   * check (so calls on already-open connections from a CA that was dropped are refused too).
   */
  setApplianceTrust(pems: readonly string[]): void;
  /**
   * Serves new TLS material (a renewed certificate, a rotated CA bundle, a new session-ticket
   * secret) to new handshakes; connections already open keep theirs, so held streams stay up.
   * The set is checked first (tls-material.ts: parses, key matches, chains to the CA, valid now,
   * same identity): a bad one throws `TlsMaterialError` and the current one keeps serving. A new
   * ticket secret or CA changes the ticket key, so tickets issued before are declined once (a
   * full handshake instead of a resumption; nothing is dropped).
   */
  setTls(next: TlsUpdate): TlsServed;
  /**
   * Graceful shutdown: stop accepting, mark every service NOT_SERVING, end streams through the
   * shutdown signal, wait up to `shutdownGraceMs` for in-flight calls, then cut what remains.
   * Idempotent; resolves even when clients misbehave.
   */
  close(): Promise<void>;
}
