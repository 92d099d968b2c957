/**
 * The transports the box calls licensing over: server-authenticated TLS for Activate, mTLS with
 * the box's certificate afterwards; gRPC over HTTP/2, or Connect over HTTP/1.1 for boxes behind
 * proxies that cannot do HTTP/2.
 */
import { Agent as HttpsAgent } from "node:https";
import type { Transport } from "@connectrpc/connect";
import { Http2SessionManager, createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import type { ApplianceOptions } from "./api.js";
import { resumingConnection, type SessionTicketCache } from "./tls-session.js";

/** The box's client certificate and its key (PEM). */
export interface ClientIdentity {
  readonly certPem: string;
  readonly keyPem: string;
}

/** A transport for one connection attempt and the function that closes it. */
export interface CallTransport {
  readonly transport: Transport;
  readonly close: () => void;
}

/**
 * A transport for one connection attempt. Each attempt gets its own HTTP/2 session (or HTTPS
 * agent), so a reconnect never reuses a dead socket, a renewed certificate takes effect, and
 * stop() leaves nothing open that keeps the host alive.
 */
export function openTransport(
  options: Pick<ApplianceOptions, "transport" | "caPem" | "baseUrl" | "httpVersion">,
  tickets: SessionTicketCache,
  identity: ClientIdentity | null,
): CallTransport {
  if (options.transport) return { transport: options.transport, close: () => {} };
  const baseUrl = options.baseUrl;
  // The shell never dials without one (an air-gapped box); this guards the invariant.
  if (baseUrl === undefined) throw new Error("an air-gapped box (no baseUrl) has no transport");
  const tls = {
    ca: options.caPem,
    ...(identity ? { cert: identity.certPem, key: identity.keyPem } : {}),
  };
  if (options.httpVersion === "1.1") {
    const agent = new HttpsAgent({ keepAlive: true, ...tls });
    return {
      transport: createConnectTransport({ baseUrl, httpVersion: "1.1", nodeOptions: { agent } }),
      close: () => agent.destroy(),
    };
  }
  // With an identity (the heartbeat stream), redial with the last session ticket: after a restart
  // of licensing the box resumes TLS, sparing the server a full handshake per box in the storm.
  const sessionManager = new Http2SessionManager(
    baseUrl,
    {},
    identity ? { ...tls, createConnection: resumingConnection(tls, identity.certPem, tickets) } : tls,
  );
  return {
    transport: createGrpcTransport({ baseUrl, sessionManager }),
    close: () => sessionManager.abort(),
  };
}
