/**
 * What one client may hold: the server announces a limit of concurrent streams per HTTP/2
 * connection (SETTINGS_MAX_CONCURRENT_STREAMS, default 100) and refuses the streams of a client
 * that ignores it; and unauthenticated streams (health Watch, reflection) have a server-wide cap,
 * so opening many connections does not pile them up either. Counted, over real TLS.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { Health } from "@lcp/proto/grpc/health/v1/health_pb";
import { ServerReflection } from "@lcp/proto/grpc/reflection/v1/reflection_pb";
import { createServer, DEFAULT_CONNECTION_LIMITS, DEFAULT_MAX_PUBLIC_STREAMS } from "@lcp/rpc";
import { createTestPki } from "@lcp/testing/pki";
import { startTestServer, type TestServer } from "@lcp/testing/server";
import { afterEach, describe, expect, it } from "vitest";
import { bareServerOptions } from "./bare-server-options.js";
import { newCalls, signingStub } from "./fixtures.js";
import { connectRawH2 } from "./raw-h2-client.js";

const WATCH = "/grpc.health.v1.Health/Watch";

/** Waits until `cond()` holds, polling every 10 ms. */
async function until(cond: () => boolean, what: string, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("streams one connection may hold", () => {
  let t: TestServer | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it("announces the limit and answers no more than it to a client that opens streams regardless", async () => {
    t = await startTestServer({ name: "signing-keys", register: signingStub(newCalls()), connectionLimits: { maxStreamsPerConnection: 5 } });
    const c = connectRawH2({ port: t.server.port, caPem: t.pki.ca.certPem });
    await c.ready;
    // Twenty Watch streams at once, without waiting for the server's SETTINGS.
    for (let i = 0; i < 20; i++) c.grpcCall(WATCH);
    // Every stream answered or reset, or the server gave up on the connection.
    let closed = false;
    void c.closed.then(() => (closed = true));
    await until(() => c.fates.size === 20 || closed, "the server's verdict on every stream");
    const answered = [...c.fates.values()].filter((f) => f === "answered").length;
    expect(c.maxConcurrentStreams).toBe(5);
    expect(answered).toBe(5);
    c.destroy();
  });

  it("announces 100 by default", async () => {
    expect(DEFAULT_CONNECTION_LIMITS.maxStreamsPerConnection).toBe(100);
    t = await startTestServer({ name: "signing-keys", register: signingStub(newCalls()) });
    const c = connectRawH2({ port: t.server.port, caPem: t.pki.ca.certPem });
    await c.ready;
    await until(() => c.maxConcurrentStreams !== undefined, "the server's SETTINGS");
    expect(c.maxConcurrentStreams).toBe(100);
    c.destroy();
  });

  it("refuses limits that are not positive whole numbers", async () => {
    const options = await bareServerOptions(await createTestPki(), "signing-keys", signingStub(newCalls()));
    for (const bad of [{ maxStreamsPerConnection: 0 }, { idleTimeoutMs: -1 }, { keepaliveIntervalMs: 1.5 }, { keepaliveTimeoutMs: Number.NaN }]) {
      await expect(createServer({ ...options, connectionLimits: bad })).rejects.toThrow(new RegExp(`connectionLimits\\.${Object.keys(bad)[0]}`));
    }
    await expect(createServer({ ...options, maxPublicStreams: 0 })).rejects.toThrow(/maxPublicStreams/);
  });
});

describe("unauthenticated streams on one server", () => {
  let t: TestServer | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  /** Opens a Watch on a connection of its own; resolves once its first status arrived. */
  async function watch(server: TestServer, signal: AbortSignal): Promise<ConnectError | undefined> {
    // A fresh client is a fresh connection: the cap is across connections, not within one.
    const client = server.anonymousClient(Health);
    const stream = client.watch({ service: "" }, { signal });
    try {
      const first = await stream[Symbol.asyncIterator]().next();
      expect(first.done).toBe(false);
      return undefined;
    } catch (err) {
      return ConnectError.from(err);
    }
  }

  it("answers ResourceExhausted past the cap, across connections, and takes new ones once a slot is free", async () => {
    expect(DEFAULT_MAX_PUBLIC_STREAMS).toBe(1_000);
    t = await startTestServer({ name: "signing-keys", register: signingStub(newCalls()), maxPublicStreams: 3 });
    const holders = [new AbortController(), new AbortController(), new AbortController()];
    for (const h of holders) expect(await watch(t, h.signal)).toBeUndefined();

    const extra = new AbortController();
    const refused = await watch(t, extra.signal);
    expect(refused?.code).toBe(Code.ResourceExhausted);
    // Reflection streams draw on the same slots.
    const reflection = t.anonymousClient(ServerReflection).serverReflectionInfo(
      (async function* () {
        yield { host: "", messageRequest: { case: "listServices", value: "" } };
      })(),
    );
    await expect((async () => {
      for await (const _ of reflection) void _;
    })()).rejects.toMatchObject({ code: Code.ResourceExhausted });
    // Unary health checks are never counted: probes keep working.
    expect((await t.anonymousClient(Health).check({ service: "" })).status).toBe(1);

    // The slot comes back once the server has seen the cancel: try until it has.
    holders[0]!.abort();
    const again = new AbortController();
    let result: ConnectError | undefined | "not tried" = "not tried";
    for (let i = 0; i < 50 && result !== undefined; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 20));
      result = await watch(t, again.signal);
    }
    expect(result).toBeUndefined();
    for (const h of [...holders, again]) h.abort();
  });
});
