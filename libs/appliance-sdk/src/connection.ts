/**
 * The box's connection to licensing: the Heartbeat stream (bidi, over mTLS) or, for HTTP/1.1-only
 * boxes, the unary SendHeartbeat polled every interval; reconnects with jittered backoff, or after
 * the longer STREAM_REPLACED delay when another process took the stream over. What the server
 * sends is handed to the appliance shell, which decides with the directive core.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { ApplianceService, type HeartbeatRequestSchema, type HeartbeatResponse } from "@lcp/proto/licensing/v1/appliance_service_pb";
import type { Directive } from "@lcp/proto/licensing/v1/types_pb";
import { DEFAULT_AGENT_VERSION } from "./activation.js";
import type { ApplianceLogger, ApplianceOptions } from "./api.js";
import { DEFAULT_BACKOFF, backoffDelay, replacedDelay, type BackoffOptions } from "./backoff.js";
import type { CertificateRenewal, RenewalStream } from "./certificate.js";
import { keyIdsOf } from "./key-set.js";
import { errorReason } from "./messages.js";
import { createOutbox, type Outbox } from "./outbox.js";
import type { Scheduler, TimerHandle } from "./scheduler.js";
import type { ApplianceStateFile } from "./state-file.js";
import { refreshTicket, type SessionTicketCache } from "./tls-session.js";
import type { CallTransport, ClientIdentity } from "./transport.js";

type HeartbeatRequestInit = MessageInitShape<typeof HeartbeatRequestSchema>;

// A stream with no server message for this many intervals is presumed dead (half-open TCP).
const SILENT_INTERVALS = 3;
// A day: tickets then stay far inside their 7-day lifetime, for one full handshake a box a day.
const DEFAULT_TICKET_REFRESH_MS = 86_400_000;

/** The connection's options with their defaults applied. */
interface Tuning {
  readonly random: () => number;
  readonly backoff: BackoffOptions;
  readonly ticketRefreshMs: number;
}

function tuningOf(options: ApplianceOptions): Tuning {
  return {
    random: options.random ?? Math.random,
    backoff: { ...DEFAULT_BACKOFF, ...options.backoff },
    ticketRefreshMs: options.ticketRefreshMs ?? DEFAULT_TICKET_REFRESH_MS,
  };
}

/** The stream being held, as the directive handling acts on it. */
export interface StreamContext extends RenewalStream {
  /** Re-arms the beat and the silence watchdog (the interval changed). */
  rescheduleBeat(): void;
  /** Ends this stream after its queued messages are taken, and reconnects at once. */
  reconnectNow(): void;
}

/** What the connection runs with: the appliance shell. */
export interface ConnectionHost {
  readonly options: ApplianceOptions;
  readonly clock: () => number;
  readonly scheduler: Scheduler;
  readonly log: ApplianceLogger;
  readonly callTimeoutMs: number;
  readonly tickets: SessionTicketCache;
  readonly certificates: CertificateRenewal;
  /** The state file held now; throws when the box is not activated. */
  file(): ApplianceStateFile;
  /** An mTLS transport with the box's current certificate. */
  transport(identity: ClientIdentity): CallTransport;
  intervalMs(): number;
  reportedLeaseSeq(): bigint;
  setStreamHealthy(healthy: boolean): void;
  setStream(stream: StreamContext | null): void;
  /** A unary call succeeded at `at` (counts as connected for two intervals). */
  contacted(at: number): void;
  /** Raises the time watermark to a server time (never lowers it). */
  raiseWatermark(serverTime: number): void;
  refresh(): void;
  persist(): Promise<void>;
  reportError(error: unknown): void;
  markRevoked(): Promise<void>;
  /** Applies one directive; `ack` sends its id back (on the stream, or with the next unary call). */
  applyDirective(directive: Directive, ack: (ids: readonly string[]) => void): Promise<void>;
  /** Whether a unary box should beat again at once (it was told its lease's key is gone); clears it. */
  takeAskLeaseNow(): boolean;
}

/** The client's identity from the state file. */
export function identityOf(st: ApplianceStateFile): ClientIdentity {
  return { certPem: st.certificatePem, keyPem: st.privateKeyPem };
}

/** Resolves after `ms` on the host's scheduler, or at once when `signal` aborts. */
function sleep(scheduler: Scheduler, ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = scheduler.setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      scheduler.clearTimeout(timer);
      resolve();
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Connects, holds the stream (or polls the unary call), and on any failure waits a jittered,
 * growing delay and tries again — until `signal` aborts. Nothing escapes it: the box's licence
 * must never be the reason its host process dies.
 */
export async function connectionLoop(host: ConnectionHost, signal: AbortSignal): Promise<void> {
  const tuning = tuningOf(host.options);
  let attempt = 0;
  const markHealthy = () => {
    attempt = 0;
  };
  while (!signal.aborted) {
    let reconnectNow = false;
    let replaced = false;
    try {
      if (host.options.httpVersion === "1.1") await pollUnary(host, signal, markHealthy);
      else reconnectNow = await holdStream(host, tuning, signal, markHealthy);
    } catch (error) {
      if (!signal.aborted) {
        const reason = errorReason(error);
        if (reason === "LICENSE_REVOKED") await host.markRevoked();
        replaced = reason === "STREAM_REPLACED";
        if (replaced) host.log.warn({}, "heartbeat stream replaced by a newer one of this deployment; is another process using this certificate?");
        host.reportError(error);
      }
    }
    host.setStreamHealthy(false);
    if (signal.aborted) break;
    if (reconnectNow) continue;
    const delay = replaced ? replacedDelay(tuning.backoff, tuning.random) : backoffDelay(attempt++, tuning.backoff, tuning.random);
    host.log.debug({ delayMs: delay, attempt }, "heartbeat reconnect scheduled");
    await sleep(host.scheduler, delay, signal);
  }
}

/** Holds one Heartbeat stream until it ends. Returns true when it should reconnect at once. */
async function holdStream(host: ConnectionHost, tuning: Tuning, signal: AbortSignal, markHealthy: () => void): Promise<boolean> {
  const st = host.file();
  const { scheduler } = host;
  const streamAbort = new AbortController();
  const onLoopAbort = () => streamAbort.abort();
  signal.addEventListener("abort", onLoopAbort, { once: true });
  const outbox: Outbox<HeartbeatRequestInit> = createOutbox();
  const { transport, close } = host.transport(identityOf(st));
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
    renewal ??= host.certificates.send({
      send: (csrPem) => outbox.push({ kind: { case: "renewCertificate", value: { csrPem } } }),
      signal: streamAbort.signal,
    });
    return renewal;
  };

  const sendBeat = () => {
    nonce += 1n;
    outbox.push({ kind: { case: "beat", value: { boxTime: timestampFromMs(host.clock()), nonce } } });
    if (!renewalChecked) {
      renewalChecked = true;
      if (host.certificates.due()) void requestCertificateRenewal().catch((error: unknown) => host.reportError(error));
    }
  };
  const scheduleBeat = () => {
    if (beatTimer !== null) scheduler.clearTimeout(beatTimer);
    beatTimer = scheduler.setTimeout(() => {
      beatTimer = null;
      sendBeat();
      scheduleBeat();
    }, host.intervalMs());
  };
  // While the stream is held, keep a ticket young enough to resume with after a server restart.
  const scheduleTicketRefresh = () => {
    const every = tuning.ticketRefreshMs;
    const baseUrl = host.options.baseUrl;
    if (every <= 0 || host.options.transport || host.options.httpVersion === "1.1" || baseUrl === undefined) return;
    const identity = identityOf(host.file());
    const now = host.clock();
    // No ticket kept (a server that issues none): wait a whole period rather than retry at once.
    const receivedAt = host.tickets.receivedAt(identity.certPem) ?? now;
    const delay = Math.max(0, receivedAt + every - now) + tuning.random() * (every / 2);
    ticketTimer = scheduler.setTimeout(() => {
      ticketTimer = null;
      const tls = { ca: host.options.caPem, cert: identity.certPem, key: identity.keyPem };
      void refreshTicket(baseUrl, tls, identity.certPem, host.tickets).then((kept) => {
        host.log.debug({ kept }, "TLS session ticket refreshed");
        if (!streamAbort.signal.aborted) scheduleTicketRefresh();
      });
    }, delay);
  };
  const armWatchdog = () => {
    if (watchdog !== null) scheduler.clearTimeout(watchdog);
    watchdog = scheduler.setTimeout(() => {
      host.log.warn({}, "heartbeat stream silent; reconnecting");
      streamAbort.abort();
    }, SILENT_INTERVALS * host.intervalMs());
  };

  host.setStream({
    rescheduleBeat: () => {
      scheduleBeat();
      armWatchdog();
    },
    requestCertificateRenewal,
    reconnectNow: () => {
      reconnectNow = true;
      void outbox.drained().then(() => streamAbort.abort());
    },
  });

  outbox.push({
    kind: {
      case: "hello",
      value: {
        licenseId: st.licenseId,
        fingerprint: host.options.fingerprint,
        lastLeaseSeq: host.reportedLeaseSeq(),
        agentVersion: host.options.agentVersion ?? DEFAULT_AGENT_VERSION,
        keyIds: keyIdsOf(st.jwks),
      },
    },
  });
  // Acks owed from unary calls or an earlier stream; the server redelivers anyway, but an ack
  // spares it that work.
  if (st.pendingAcks.length > 0) {
    outbox.push({ kind: { case: "ack", value: { directiveIds: [...st.pendingAcks] } } });
    st.pendingAcks = [];
    void host.persist();
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
        host.setStreamHealthy(true);
        scheduleTicketRefresh();
      }
      await handleResponse(host, response, (ids) => outbox.push({ kind: { case: "ack", value: { directiveIds: [...ids] } } }));
    }
  } catch (error) {
    // Our own abort (stop, silence, reconnect for a new certificate) is not an error.
    if (!(streamAbort.signal.aborted && ConnectError.from(error).code === Code.Canceled)) throw error;
  } finally {
    host.setStream(null);
    if (beatTimer !== null) scheduler.clearTimeout(beatTimer);
    if (watchdog !== null) scheduler.clearTimeout(watchdog);
    if (ticketTimer !== null) scheduler.clearTimeout(ticketTimer);
    signal.removeEventListener("abort", onLoopAbort);
    outbox.close();
    streamAbort.abort();
    close();
  }
  return reconnectNow;
}

async function handleResponse(host: ConnectionHost, response: HeartbeatResponse, ack: (ids: readonly string[]) => void): Promise<void> {
  switch (response.kind.case) {
    case "ack": {
      const serverTime = response.kind.value.serverTime;
      if (serverTime) host.raiseWatermark(timestampDate(serverTime).getTime());
      host.refresh();
      return;
    }
    case "directive":
      await host.applyDirective(response.kind.value, ack);
      return;
    default:
      return;
  }
}

/** HTTP/1.1 mode: one SendHeartbeat per interval; a failure throws to the loop's backoff. */
async function pollUnary(host: ConnectionHost, signal: AbortSignal, markHealthy: () => void): Promise<void> {
  while (!signal.aborted) {
    await unaryBeat(host);
    markHealthy();
    await sleep(host.scheduler, host.takeAskLeaseNow() ? 0 : host.intervalMs(), signal);
  }
}

/** One SendHeartbeat: sends the acks owed, applies the directives it returns. Resolves to their count. */
export async function unaryBeat(host: ConnectionHost): Promise<number> {
  const st = host.file();
  const acked = [...st.pendingAcks];
  const { transport, close } = host.transport(identityOf(st));
  let response;
  try {
    response = await createClient(ApplianceService, transport).sendHeartbeat(
      {
        licenseId: st.licenseId,
        fingerprint: host.options.fingerprint,
        lastLeaseSeq: host.reportedLeaseSeq(),
        agentVersion: host.options.agentVersion ?? DEFAULT_AGENT_VERSION,
        boxTime: timestampFromMs(host.clock()),
        ackedDirectiveIds: acked,
        keyIds: keyIdsOf(st.jwks),
      },
      { timeoutMs: host.callTimeoutMs },
    );
  } finally {
    close();
  }
  // The server has them now; keep only acks added while the call was in flight. (Read the state
  // again: a directive applied meanwhile replaced it.)
  const now = host.file();
  now.pendingAcks = now.pendingAcks.filter((id) => !acked.includes(id));
  host.contacted(host.clock());
  if (response.serverTime) host.raiseWatermark(timestampDate(response.serverTime).getTime());
  for (const directive of response.directives) {
    await host.applyDirective(directive, (ids) => host.file().pendingAcks.push(...ids));
  }
  // Only a change of acks needs a write here (directives persist themselves; the watermark is
  // throttled in evaluate), so a polling box does not rewrite its file every interval.
  if (acked.length > 0 || response.directives.length > 0) await host.persist();
  host.refresh();
  return response.directives.length;
}
