/**
 * TLS session resumption for the heartbeat connection (a restart after kill -9): the box keeps the last
 * session ticket its connection received and offers it when it redials, so a restarted licensing
 * process (whose ticket keys survive the restart) resumes 10,000 boxes without a signature and a
 * client-chain check each. Kept in memory only: the case it serves is the server restarting while
 * the box process lives; a box that restarts does one full handshake, as it always did.
 *
 * Node's server issues tickets on full handshakes only, and a ticket is good for its lifetime
 * (7 days at most in TLS 1.3) from that handshake. A box holding its stream for weeks would hold a
 * dead ticket when the server dies, so {@link refreshTicket} fetches a fresh one now and then on a
 * short connection of its own.
 */
import { isIP } from "node:net";
import { connect, type ConnectionOptions, type TLSSocket } from "node:tls";

/** The box's last session ticket, for the client certificate it was issued under. */
export class SessionTicketCache {
  private kept: { readonly certPem: string; readonly ticket: Buffer; readonly at: number } | null = null;

  constructor(private readonly clock: () => number = Date.now) {}

  /**
   * The ticket to offer when connecting with `certPem`. None after a certificate renewal: a ticket
   * carries the certificate of the handshake that issued it, and resuming it would present the old one.
   */
  offer(certPem: string): Buffer | undefined {
    return this.kept?.certPem === certPem ? this.kept.ticket : undefined;
  }

  /** Keeps `ticket` (the latest wins; node issues none on a resumed connection, so the old one stays). */
  keep(certPem: string, ticket: Buffer): void {
    this.kept = { certPem, ticket, at: this.clock() };
  }

  /** When the kept ticket for `certPem` was received (its full handshake), or null if none is kept. */
  receivedAt(certPem: string): number | null {
    return this.kept?.certPem === certPem ? this.kept.at : null;
  }

  forget(): void {
    this.kept = null;
  }
}

/** The client TLS material of a connection: PEMs, or a secure context built once from them. */
export type ClientTls = Pick<ConnectionOptions, "ca" | "cert" | "key" | "secureContext">;

/**
 * A `createConnection` for `http2.connect` (and connect-node's Http2SessionManager): a TLS socket to
 * `authority` with ALPN h2, as http2.connect would open, that offers the kept ticket and keeps every
 * new one (`socket.on("session")`) for `certPem`, the client certificate in `tls`. A ticket the server cannot use (new keys, changed trust, expired)
 * costs nothing: the server ignores it and the handshake is a full one.
 */
export function resumingConnection(tls: ClientTls, certPem: string, tickets: SessionTicketCache, offer = true): (authority: URL) => TLSSocket {
  return (authority) => {
    const host = authority.hostname.startsWith("[") ? authority.hostname.slice(1, -1) : authority.hostname;
    const options: ConnectionOptions = {
      host,
      port: Number(authority.port || 443),
      // SNI carries names only, as http2.connect does.
      ...(isIP(host) === 0 ? { servername: host } : {}),
      ALPNProtocols: ["h2"],
      ...tls,
    };
    const ticket = offer ? tickets.offer(certPem) : undefined;
    let socket: TLSSocket;
    try {
      socket = connect(ticket ? { ...options, session: ticket } : options);
    } catch {
      // A ticket OpenSSL cannot even parse: drop it and do the full handshake.
      tickets.forget();
      socket = connect(options);
    }
    socket.on("session", (session: Buffer) => tickets.keep(certPem, session));
    return socket;
  };
}

/**
 * Gets a fresh ticket on a short connection of its own: a full handshake (nothing offered, so the
 * server issues tickets), then closed once the ticket arrived. Resolves true if one was kept; never
 * rejects (the next refresh, or the next full handshake, tries again).
 */
export function refreshTicket(baseUrl: string, tls: ClientTls, certPem: string, tickets: SessionTicketCache, timeoutMs = 30_000): Promise<boolean> {
  return new Promise((resolve) => {
    let socket: TLSSocket;
    try {
      socket = resumingConnection(tls, certPem, tickets, false)(new URL(baseUrl));
    } catch {
      resolve(false);
      return;
    }
    const done = (kept: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(kept);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    // resumingConnection keeps it; this listener runs after that one.
    socket.once("session", () => done(true));
    socket.once("error", () => done(false));
    socket.once("close", () => done(false));
  });
}
