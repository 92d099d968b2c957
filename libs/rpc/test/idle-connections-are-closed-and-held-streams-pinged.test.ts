/**
 * Connections that hold nothing do not stay open for ever, and connections that hold a stream are
 * kept honest (connections.ts), over real TLS with shrunk timers:
 * - an HTTP/2 connection with no open stream is closed after the idle timeout (GOAWAY), whether it
 *   never opened one, keeps sending PINGs, or its calls are over; an HTTP/1.1 socket with no
 *   request likewise;
 * - a connection holding a stream outlives the idle timeout while its peer answers the keepalive
 *   PINGs; a peer that stops answering is dropped, and its stream's slot is released.
 */
import * as http2 from "node:http2";
import * as tls from "node:tls";
import { Health } from "@lcp/proto/grpc/health/v1/health_pb";
import { DEFAULT_CONNECTION_LIMITS } from "@lcp/rpc";
import { startTestServer, type TestServer } from "@lcp/testing/server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newCalls, signingStub } from "./fixtures.js";
import { connectRawH2 } from "./raw-h2-client.js";

const IDLE_MS = 300;
const KEEPALIVE_MS = 150;
const PING_TIMEOUT_MS = 150;

/** `promise`, or a failure naming `what` once `ms` passed (a connection never closed fails fast). */
function within<T>(promise: Promise<T>, what: string, ms = 3_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)));
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** A bare node:http2 session to the server (node's client acks PINGs itself). */
function nodeSession(t: TestServer): http2.ClientHttp2Session {
  const session = http2.connect(t.url, { ca: t.pki.ca.certPem });
  session.on("error", () => undefined);
  return session;
}

/** Resolves with the milliseconds from now until `session` closes. */
function closeOf(session: http2.ClientHttp2Session): Promise<number> {
  const from = performance.now();
  return new Promise((resolve) => session.once("close", () => resolve(performance.now() - from)));
}

describe("idle connections and held streams", () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({
      name: "signing-keys",
      register: signingStub(newCalls()),
      connectionLimits: { idleTimeoutMs: IDLE_MS, keepaliveIntervalMs: KEEPALIVE_MS, keepaliveTimeoutMs: PING_TIMEOUT_MS },
      maxPublicStreams: 1,
    });
  });
  afterAll(() => t?.close());

  it("keeps a default of at most two minutes", () => {
    expect(DEFAULT_CONNECTION_LIMITS.idleTimeoutMs).toBeLessThanOrEqual(120_000);
  });

  it("closes an HTTP/2 connection that opens no stream, even one that keeps sending PINGs", async () => {
    const c = connectRawH2({ port: t.server.port, caPem: t.pki.ca.certPem, answerPings: true });
    await c.ready;
    const pinging = setInterval(() => c.ping(), 50);
    try {
      const kept = await within(c.closed, "closed");
      expect(kept).toBeGreaterThanOrEqual(IDLE_MS - 50);
      expect(kept).toBeLessThan(3_000);
      expect(c.goaway).toBe(true);
    } finally {
      clearInterval(pinging);
    }
  });

  it("closes an HTTP/2 connection once its calls are over and the idle timeout passed", async () => {
    const session = nodeSession(t);
    const req = session.request({ ":method": "GET", ":path": "/metrics" });
    req.resume();
    await new Promise((resolve) => req.once("close", resolve));
    let goaway = false;
    session.once("goaway", () => (goaway = true));
    const kept = await within(closeOf(session), "closed");
    expect(goaway).toBe(true);
    expect(kept).toBeGreaterThanOrEqual(IDLE_MS - 100);
    expect(kept).toBeLessThan(3_000);
  });

  it("closes an HTTP/1.1 connection that sends no request", async () => {
    const socket = tls.connect({ host: "127.0.0.1", port: t.server.port, servername: "localhost", ca: t.pki.ca.certPem, ALPNProtocols: ["http/1.1"] });
    socket.on("error", () => undefined);
    await new Promise((resolve) => socket.once("secureConnect", resolve));
    const from = performance.now();
    await within(new Promise((resolve) => socket.once("close", resolve)), "closed");
    const kept = performance.now() - from;
    expect(kept).toBeGreaterThanOrEqual(IDLE_MS - 50);
    expect(kept).toBeLessThan(3_000);
  });

  it("keeps a connection that holds a stream past the idle timeout while its peer answers PINGs", async () => {
    const session = nodeSession(t);
    let pings = 0;
    session.on("ping", () => pings++);
    const watch = session.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Watch", "content-type": "application/grpc", te: "trailers" });
    watch.end(Buffer.alloc(5));
    let streamClosed = false;
    watch.on("close", () => (streamClosed = true));
    watch.on("error", () => undefined);
    watch.resume();
    await new Promise((resolve) => watch.once("response", resolve));
    await new Promise((r) => setTimeout(r, IDLE_MS * 4));
    expect(streamClosed).toBe(false);
    expect(session.closed || session.destroyed).toBe(false);
    expect(pings).toBeGreaterThanOrEqual(2);
    watch.close();
    session.close();
    await new Promise((resolve) => watch.once("close", resolve));
  });

  it("drops a connection holding a stream whose peer stops answering PINGs, and frees the stream's slot", async () => {
    const dead = connectRawH2({ port: t.server.port, caPem: t.pki.ca.certPem, answerPings: false });
    await dead.ready;
    const id = dead.grpcCall("/grpc.health.v1.Health/Watch");
    const kept = await within(dead.closed, "dropped");
    expect(dead.fates.get(id)).toBe("answered");
    expect(dead.pingsReceived).toBeGreaterThanOrEqual(1);
    expect(kept).toBeGreaterThanOrEqual(KEEPALIVE_MS + PING_TIMEOUT_MS - 50);
    expect(kept).toBeLessThan(3_000);
    // The one Watch slot (maxPublicStreams: 1) the dead peer held is free again.
    const client = t.anonymousClient(Health);
    const stop = new AbortController();
    const first = await client.watch({ service: "" }, { signal: stop.signal })[Symbol.asyncIterator]().next();
    expect(first.done).toBe(false);
    stop.abort();
  });
});
