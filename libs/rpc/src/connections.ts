/**
 * Connection hygiene for `createServer`: what a connection may hold and how long it may sit idle.
 *
 * - Streams per HTTP/2 connection are capped (`maxStreamsPerConnection`, announced in SETTINGS as
 *   SETTINGS_MAX_CONCURRENT_STREAMS; nghttp2 refuses the extra streams of a client that ignores it,
 *   and node ends a session that keeps trying). Node's default is 2^32-1: one connection could
 *   hold thousands of calls.
 * - A connection with no open stream (an HTTP/2 session, or an HTTP/1.1 socket between requests)
 *   is closed after `idleTimeoutMs`: GOAWAY for HTTP/2, so a client that comes back reconnects.
 *   Frames without a stream (PING, SETTINGS) do not keep it alive: only a call does.
 * - A session that holds streams and has been quiet for `keepaliveIntervalMs` is pinged; a peer
 *   that does not answer within `keepaliveTimeoutMs` is gone (power cut, NAT dropped the flow), and
 *   its session is destroyed so its held streams (a heartbeat, a health Watch) are released.
 *
 * Per connection this is one small object and one timer (node's own session timer does the
 * keepalive); nothing runs per request beyond a counter.
 */
import type * as http2 from "node:http2";
import type { Socket } from "node:net";
import type { Logger } from "pino";

/** Limits on what one client connection may hold; see the module comment. */
export interface ConnectionLimits {
  /** How long a connection with no open stream is kept. Default {@link DEFAULT_CONNECTION_LIMITS}: 2 min. */
  readonly idleTimeoutMs: number;
  /** Concurrent streams one HTTP/2 connection may open. Default 100. */
  readonly maxStreamsPerConnection: number;
  /** Quiet time after which a session holding streams is pinged. Default 60 s. */
  readonly keepaliveIntervalMs: number;
  /** How long a ping may go unanswered before the session is destroyed. Default 20 s. */
  readonly keepaliveTimeoutMs: number;
}

/**
 * The defaults: a box holds one heartbeat stream on its connection and admin tools a few calls, so
 * 100 streams is far above any real client (and the common server default: nginx 128, Go 250);
 * 2 minutes idle frees the slots of clients that connected and left the connection open.
 */
export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  idleTimeoutMs: 120_000,
  maxStreamsPerConnection: 100,
  keepaliveIntervalMs: 60_000,
  keepaliveTimeoutMs: 20_000,
};

/** The limits with defaults filled in, each checked (a TypeError names the bad one). */
export function connectionLimitsOf(given: Partial<ConnectionLimits> = {}): ConnectionLimits {
  const limits = { ...DEFAULT_CONNECTION_LIMITS, ...definedOnly(given) };
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isInteger(value) || value <= 0) throw new TypeError(`connectionLimits.${name} must be a positive whole number, got ${value}`);
  }
  if (limits.maxStreamsPerConnection > 2 ** 31 - 1) throw new TypeError("connectionLimits.maxStreamsPerConnection must be below 2^31");
  return limits;
}

function definedOnly(given: Partial<ConnectionLimits>): Partial<ConnectionLimits> {
  return Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined));
}

const kGuard = Symbol("lcp.connectionGuard");
type Guarded = { [kGuard]?: ConnectionGuard };

/** One connection's open streams and idle timer. */
class ConnectionGuard {
  open = 0;
  private readonly idle: NodeJS.Timeout;
  private pingDeadline: NodeJS.Timeout | undefined;

  constructor(
    private readonly limits: ConnectionLimits,
    private readonly log: Logger,
    private readonly closeIdle: () => void,
    private readonly session?: http2.ServerHttp2Session,
  ) {
    // Idle from the start: a connection that never opens a stream is closed like one that stopped.
    this.idle = setTimeout(onIdle, limits.idleTimeoutMs, this);
    this.idle.unref();
  }

  opened(): void {
    this.open++;
  }

  closed(): void {
    // The timer that fired while streams were open did nothing; start the idle period now.
    if (--this.open === 0) this.idle.refresh();
  }

  expire(): void {
    if (this.open > 0) return;
    this.log.debug({ idleTimeoutMs: this.limits.idleTimeoutMs }, "closing an idle connection");
    this.closeIdle();
  }

  /** The session was quiet for the keepalive interval: ping it if it holds streams. */
  quiet(): void {
    const session = this.session!;
    if (session.destroyed || session.closed) return;
    // Re-armed each time: node fires a session's timeout once per quiet period.
    session.setTimeout(this.limits.keepaliveIntervalMs);
    if (this.open === 0 || this.pingDeadline !== undefined) return;
    const deadline = setTimeout(onPingUnanswered, this.limits.keepaliveTimeoutMs, this);
    deadline.unref();
    this.pingDeadline = deadline;
    const sent = session.ping((err) => {
      clearTimeout(deadline);
      this.pingDeadline = undefined;
      if (err) this.log.debug({ err: err.message }, "keepalive ping failed");
    });
    if (!sent) {
      clearTimeout(deadline);
      this.pingDeadline = undefined;
    }
  }

  pingUnanswered(): void {
    this.pingDeadline = undefined;
    const session = this.session!;
    if (session.destroyed) return;
    this.log.debug({ streams: this.open, keepaliveTimeoutMs: this.limits.keepaliveTimeoutMs }, "keepalive ping unanswered; dropping the connection");
    session.destroy();
  }

  dispose(): void {
    clearTimeout(this.idle);
    clearTimeout(this.pingDeadline);
  }
}

// Shared callbacks: no closure per connection or per stream.
function onIdle(guard: ConnectionGuard): void {
  guard.expire();
}
function onPingUnanswered(guard: ConnectionGuard): void {
  guard.pingUnanswered();
}
function onSessionTimeout(this: http2.ServerHttp2Session & Guarded): void {
  this[kGuard]?.quiet();
}
function onSessionStream(this: http2.ServerHttp2Session & Guarded, stream: http2.ServerHttp2Stream & Guarded): void {
  const guard = this[kGuard];
  if (!guard) return;
  guard.opened();
  stream[kGuard] = guard;
  stream.once("close", onGuardedClose);
}
function onGuardedClose(this: Guarded): void {
  this[kGuard]?.closed();
}
function onConnectionClose(this: Guarded): void {
  this[kGuard]?.dispose();
}
function closeSession(session: http2.ServerHttp2Session): void {
  // GOAWAY: the client knows no stream was lost and reconnects when it needs to.
  if (!session.closed && !session.destroyed) session.close();
}
function closeSocket(socket: Socket): void {
  socket.destroySoon();
}

/**
 * Applies {@link ConnectionLimits} to a server: `settings` for `http2.createSecureServer`, then
 * `session` and `http1Socket` for each new connection, and `http1Request` for each HTTP/1.1 request.
 */
export interface ConnectionGuards {
  /** The HTTP/2 settings that announce the stream limit. */
  readonly settings: http2.Settings;
  /** A new HTTP/2 session: count its streams, close it when idle, ping it when it holds some. */
  session(session: http2.ServerHttp2Session): void;
  /** A new TLS connection that did not negotiate HTTP/2: close it when idle between requests. */
  http1Socket(socket: Socket): void;
  /** An HTTP/1.1 request on a socket given to `http1Socket`: open until its `response` closes. */
  http1Request(socket: Socket, response: { once(event: "close", listener: () => void): unknown }): void;
}

/** Creates the guards of one server. */
export function createConnectionGuards(limits: ConnectionLimits, log: Logger): ConnectionGuards {
  return {
    settings: { maxConcurrentStreams: limits.maxStreamsPerConnection },
    session(session) {
      const tagged = session as http2.ServerHttp2Session & Guarded;
      tagged[kGuard] = new ConnectionGuard(limits, log, () => closeSession(session), session);
      session.on("stream", onSessionStream);
      session.once("close", onConnectionClose);
      session.on("timeout", onSessionTimeout);
      session.setTimeout(limits.keepaliveIntervalMs);
    },
    http1Socket(socket) {
      const tagged = socket as Socket & Guarded;
      tagged[kGuard] = new ConnectionGuard(limits, log, () => closeSocket(socket));
      socket.once("close", onConnectionClose);
    },
    http1Request(socket, response) {
      const guard = (socket as Socket & Guarded)[kGuard];
      if (!guard) return;
      guard.opened();
      response.once("close", () => guard.closed());
    },
  };
}
