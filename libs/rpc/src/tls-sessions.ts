/**
 * TLS session resumption for `createServer`: ticket keys derived from a stored secret and the
 * trust set (so they survive restarts and change with the trust set), and the validity check a
 * resumed session needs because OpenSSL does not verify the client's chain again.
 */
import { createHash, hkdfSync, type X509Certificate } from "node:crypto";
import type { TLSSocket } from "node:tls";
import { DEFAULT_TICKET_LIFETIME_S, TICKET_SECRET_BYTES, type SessionTicketOptions } from "./server-options.js";

/** Refuses a ticket secret of the wrong size or a lifetime outside 1 s … 7 days (TypeError). */
export function validateTickets(tickets: SessionTicketOptions): void {
  if (tickets.secret.byteLength !== TICKET_SECRET_BYTES) {
    throw new TypeError(`sessionTickets.secret must be ${TICKET_SECRET_BYTES} bytes, got ${tickets.secret.byteLength}`);
  }
  const lifetime = tickets.lifetimeS;
  if (lifetime !== undefined && (!Number.isInteger(lifetime) || lifetime < 1 || lifetime > DEFAULT_TICKET_LIFETIME_S)) {
    throw new TypeError(`sessionTickets.lifetimeS must be a whole number of seconds from 1 to ${DEFAULT_TICKET_LIFETIME_S}`);
  }
}

/**
 * The 48-byte `ticketKeys` for a secret under a trust set: HKDF-SHA256 of the secret, salted with
 * the trusted CAs' fingerprints (platform and appliance apart, each sorted), so the same secret and
 * trust set give the same key in every process, and any change to the trust set gives another.
 */
export function ticketKeysFor(secret: Uint8Array, platformCas: readonly X509Certificate[], applianceCas: readonly X509Certificate[]): Buffer {
  const fingerprints = (cas: readonly X509Certificate[]) => cas.map((ca) => ca.fingerprint256).sort().join(",");
  const salt = createHash("sha256").update(`platform:${fingerprints(platformCas)};appliance:${fingerprints(applianceCas)}`).digest();
  return Buffer.from(hkdfSync("sha256", secret, salt, "lcp tls session tickets v1", TICKET_SECRET_BYTES));
}

/**
 * OpenSSL's code for a peer chain (leaf and the issuers it was verified with) that is not valid at
 * `now`, or undefined: what a full handshake would report for it. `trusted` are the listener's CA lists.
 */
export function outOfDate(socket: TLSSocket, trusted: readonly (readonly X509Certificate[])[], now: number): string | undefined {
  // The leaf as an X509Certificate, and its issuer from our own parsed trust store: building
  // getPeerCertificate(true) parses the whole chain on every call, and this runs on each
  // resumed connection of a reconnect storm. Only a chain with intermediates takes the slow walk.
  const leaf = socket.getPeerX509Certificate();
  if (!leaf) return undefined;
  let issuer: X509Certificate | undefined;
  for (const cas of trusted) issuer ??= cas.find((ca) => leaf.checkIssued(ca));
  const chain = issuer ? [leaf, issuer] : peerChain(socket);
  for (const cert of chain) {
    if (now < Date.parse(cert.validFrom)) return "CERT_NOT_YET_VALID";
    if (now > Date.parse(cert.validTo)) return "CERT_HAS_EXPIRED";
  }
  return undefined;
}

/** The peer's chain as OpenSSL verified it, leaf first, up to the root. */
function peerChain(socket: TLSSocket): { validFrom: string; validTo: string }[] {
  const chain: { validFrom: string; validTo: string }[] = [];
  let cert = socket.getPeerCertificate(true);
  const seen = new Set<string>();
  while (cert && cert.raw && !seen.has(cert.fingerprint256)) {
    seen.add(cert.fingerprint256);
    chain.push({ validFrom: cert.valid_from, validTo: cert.valid_to });
    cert = cert.issuerCertificate;
  }
  return chain;
}
