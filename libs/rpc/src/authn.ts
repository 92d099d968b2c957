import { X509Certificate, type KeyObject } from "node:crypto";
import type { TLSSocket } from "node:tls";
import { Code, ConnectError, createContextKey } from "@connectrpc/connect";
import { isServiceName, permissionsFor } from "@lcp/domain";
import { certificateUris, parseSpiffeId } from "@lcp/pki";
import type { AnonymousPrincipal, AppliancePrincipal, Principal } from "./principal.js";

/**
 * The TLS facts of the connection a call arrived on, captured when the request is received
 * (the socket may be gone by the time an interceptor runs).
 */
export interface PeerInfo {
  /** Whether OpenSSL verified the client's chain against the listener's trusted CAs. */
  readonly authorized: boolean;
  /** OpenSSL's reason when not authorized (e.g. `UNABLE_TO_VERIFY_LEAF_SIGNATURE`). */
  readonly authorizationError?: string;
  /**
   * The client certificate, leaf first, then the issuers the peer presented; empty if none.
   * From {@link peerFromSocket} it is built when first read: authentication reads only the leaf
   * when an anchor issued it directly (every box's certificate), and walking the issuers costs
   * a parse of each per connection. (A socket gone by that first read yields the leaf alone,
   * which can only refuse a certificate the full chain would admit, never the reverse.)
   */
  readonly chain: readonly X509Certificate[];
  /** A stable object per connection, so work done once per connection can be cached. */
  readonly connection: object;
}

/** The peer of the current call, put into the context values by the server. */
export const peerKey = createContextKey<PeerInfo | undefined>(undefined, { description: "lcp.peer" });

type PeerSocket = Pick<TLSSocket, "getPeerX509Certificate" | "getPeerCertificate" | "authorized" | "authorizationError">;

// Parsing certificates costs more than a small RPC; a connection's certificate never changes.
const peerCache = new WeakMap<object, PeerInfo>();

/**
 * Reads the peer certificate of a TLS socket (an `http2` compat proxy or a plain TLSSocket).
 * `connection` is the key for caching: the HTTP/2 session (stable for all its streams) or
 * the socket itself for HTTP/1.1. `cache: false` reads without keeping the result for the
 * connection's lifetime: the raw stream path authenticates a long-lived stream once, and its
 * parsed certificates would otherwise stay in memory as long as each of 10,000 connections
 * (the identity itself stays cached per connection in the authenticator either way).
 */
export function peerFromSocket(socket: unknown, connection: object = socket as object, cache = true): PeerInfo | undefined {
  const s = socket as Partial<PeerSocket> | undefined;
  if (!s || typeof s.getPeerX509Certificate !== "function") return undefined;
  const cached = peerCache.get(connection);
  if (cached) return cached;
  const info = new SocketPeer(s, connection);
  if (cache) peerCache.set(connection, info);
  return info;
}

/** A {@link PeerInfo} read from a socket; its chain beyond the leaf is walked on first read. */
class SocketPeer implements PeerInfo {
  readonly authorized: boolean;
  readonly authorizationError?: string;
  /** The client certificate (the chain's first), or undefined when none was presented. */
  readonly leaf: X509Certificate | undefined;
  private walked: X509Certificate[] | undefined;

  constructor(
    private readonly socket: Partial<PeerSocket>,
    readonly connection: object,
  ) {
    this.leaf = socket.getPeerX509Certificate?.();
    this.authorized = socket.authorized === true;
    if (socket.authorizationError) this.authorizationError = String(socket.authorizationError);
  }

  get chain(): readonly X509Certificate[] {
    return (this.walked ??= this.walk());
  }

  private walk(): X509Certificate[] {
    const leaf = this.leaf;
    if (!leaf) return [];
    const chain = [leaf];
    // The presented intermediates, if any: the detailed form links each certificate to its
    // issuer; the root links to itself, which ends the walk.
    let detail = this.socket.getPeerCertificate?.(true);
    const seen = new Set<string>([leaf.fingerprint256]);
    while (detail?.issuerCertificate && detail.issuerCertificate !== detail) {
      detail = detail.issuerCertificate;
      if (!detail.raw) break;
      const cert = new X509Certificate(detail.raw);
      if (seen.has(cert.fingerprint256)) break;
      seen.add(cert.fingerprint256);
      chain.push(cert);
    }
    return chain;
  }
}

/** A peer's leaf certificate, without walking its chain when the peer came from a socket. */
function leafOf(peer: PeerInfo): X509Certificate | undefined {
  return peer instanceof SocketPeer ? peer.leaf : peer.chain[0];
}

/**
 * Whether `chain[0]` chains to one of `anchors`: some certificate in the chain must be issued
 * (names match *and* signature verifies with the anchor's key) by an anchor, and each
 * certificate before it by the next, which must be a CA. OpenSSL has already verified the
 * path against the union of trusted CAs; this second check exists so that the *right* CA set
 * vouches for each kind of identity — the appliance CA can never mint a service identity.
 */
export function chainsTo(chain: readonly X509Certificate[], anchors: readonly X509Certificate[]): boolean {
  return chainsFrom(chain[0], () => chain, anchors);
}

/** {@link chainsTo} on a chain read only past its leaf when no anchor issued the leaf itself. */
function chainsFrom(leaf: X509Certificate | undefined, chainOf: () => readonly X509Certificate[], anchors: readonly X509Certificate[]): boolean {
  if (!leaf) return false;
  if (anchors.some((ca) => issuedBy(leaf, ca))) return true;
  const chain = chainOf();
  for (let i = 0; i < chain.length; i++) {
    const cert = chain[i]!;
    if (i > 0 && anchors.some((ca) => issuedBy(cert, ca))) return true;
    const next = chain[i + 1];
    if (!next || !next.ca || !issuedBy(cert, next)) return false;
  }
  return false;
}

function issuedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return cert.checkIssued(issuer) && cert.verify(publicKeyOf(issuer));
  } catch {
    return false;
  }
}

// `X509Certificate.publicKey` builds a new KeyObject on every read; an anchor's is read per connection.
const publicKeys = new WeakMap<X509Certificate, KeyObject>();
function publicKeyOf(cert: X509Certificate): KeyObject {
  let key = publicKeys.get(cert);
  if (!key) publicKeys.set(cert, (key = cert.publicKey));
  return key;
}

/** The verdict of `checkAppliance` on an appliance certificate. */
export type ApplianceCheck = { ok: true } | { ok: false; reason: string };

/**
 * The admin bearer-token verifier authn relies on (the shape of `@lcp/tokens`'
 * `createAdminTokenVerifier`), kept structural so tests and tools can pass their own.
 */
export interface AdminTokenVerifierLike {
  verify(
    token: string,
  ): Promise<{ ok: true; subject: string; roles: readonly string[] } | { ok: false; code: string; message: string }>;
}

/** What authentication needs to turn a call's credentials into a principal. */
export interface AuthnOptions {
  /** The SPIFFE trust domain every identity must belong to. */
  readonly trustDomain: string;
  /** The platform CA(s): the only issuers of service identities. Read per call (may change). */
  readonly platformCas: () => readonly X509Certificate[];
  /** The appliance CA(s): the only issuers of appliance identities. Read per call (rotation). */
  readonly applianceCas: () => readonly X509Certificate[];
  /** Verifies admin bearer tokens; without it no bearer token is accepted. */
  readonly adminTokens?: AdminTokenVerifierLike;
  /** Extra per-call check of an appliance (licensing refuses revoked certificate serials). */
  readonly checkAppliance?: (principal: AppliancePrincipal) => Promise<ApplianceCheck>;
}

/** Authenticates one call from its peer and request headers. */
export type Authenticator = (peer: PeerInfo | undefined, header: Headers) => Promise<Principal>;

type CertIdentity = Exclude<Principal, { kind: "admin" }>;

/**
 * Creates the per-call authenticator. The result is a principal, never an exception for bad
 * credentials: a presented credential that does not verify becomes `anonymous` with a reason,
 * and authorisation then refuses it (Unauthenticated) wherever a principal is needed — while a
 * public RPC (GetJwks, Activate, health) still works for a box whose certificate was revoked.
 *
 * Order: a bearer token wins over a client certificate when both are present, because an
 * operator's tool may run on a host that also holds a service certificate, and the token is
 * the more specific statement of who is acting.
 */
export function createAuthenticator(options: AuthnOptions): Authenticator {
  // Chain checks and SAN parsing are done once per connection and trust generation (the CA lists'
  // identities; kept as two fields, not an array: one entry per held connection).
  const identityCache = new WeakMap<object, { platform: readonly X509Certificate[]; appliance: readonly X509Certificate[]; identity: CertIdentity }>();

  async function fromBearer(authorization: string): Promise<Principal> {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!match) return anonymous("authorization header is not a Bearer token");
    if (!options.adminTokens) return anonymous("admin tokens are not accepted by this service");
    const verdict = await options.adminTokens.verify(match[1]!);
    if (!verdict.ok) {
      // The issuer's keys being unreachable is our outage, not the caller's bad token.
      if (verdict.code === "TOKEN_KEYS_UNAVAILABLE") {
        throw new ConnectError("admin token keys are unavailable, retry later", Code.Unavailable);
      }
      // The verifier's message is written for callers (no jose internals, no key material).
      return anonymous(`admin token refused: ${verdict.message}`);
    }
    return {
      kind: "admin",
      subject: verdict.subject,
      roles: [...verdict.roles],
      permissions: permissionsFor(verdict.roles),
    };
  }

  function fromCertificate(peer: PeerInfo, leaf: X509Certificate): CertIdentity {
    // An unverified chain never becomes an identity, whatever its SAN claims.
    if (!peer.authorized) {
      return anonymous(`client certificate not trusted (${peer.authorizationError ?? "unverified"})`);
    }
    const uris = certificateUris(leaf);
    const ids = uris.map(parseSpiffeId).filter((id) => id !== null);
    // Exactly one SPIFFE id: a certificate naming two identities is ambiguous, so it is neither.
    if (ids.length !== 1) return anonymous("client certificate has no single SPIFFE id");
    const id = ids[0]!;
    if (id.trustDomain !== options.trustDomain) {
      return anonymous(`client certificate is from trust domain ${id.trustDomain}`);
    }
    if (id.kind === "service") {
      if (!isServiceName(id.name)) return anonymous(`unknown service identity ${id.name}`);
      if (!chainsFrom(leaf, () => peer.chain, options.platformCas())) {
        return anonymous("service certificate is not issued by the platform CA");
      }
      return { kind: "service", name: id.name };
    }
    if (!chainsFrom(leaf, () => peer.chain, options.applianceCas())) {
      return anonymous("appliance certificate is not issued by the appliance CA");
    }
    return { kind: "appliance", deploymentId: id.name, serialNumber: leaf.serialNumber.toUpperCase() };
  }

  return async function authenticate(peer, header) {
    const authorization = header.get("authorization");
    if (authorization !== null) return fromBearer(authorization);
    const leaf = peer && leafOf(peer);
    if (!peer || !leaf) return ANONYMOUS_NO_CREDENTIALS;

    const platform = options.platformCas();
    const appliance = options.applianceCas();
    const cached = identityCache.get(peer.connection);
    let identity: CertIdentity;
    if (cached && cached.platform === platform && cached.appliance === appliance) {
      identity = cached.identity;
    } else {
      identity = fromCertificate(peer, leaf);
      identityCache.set(peer.connection, { platform, appliance, identity });
    }
    // Checked on every call, not cached: a serial revoked mid-connection must stop the next call.
    if (identity.kind === "appliance" && options.checkAppliance) {
      const check = await options.checkAppliance(identity);
      if (!check.ok) return anonymous(`appliance certificate refused: ${check.reason}`);
    }
    return identity;
  };
}

const ANONYMOUS_NO_CREDENTIALS: AnonymousPrincipal = Object.freeze({ kind: "anonymous" });

function anonymous(reason: string): AnonymousPrincipal {
  return { kind: "anonymous", reason };
}
