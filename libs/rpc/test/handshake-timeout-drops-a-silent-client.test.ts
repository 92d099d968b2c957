/**
 * `createServer({ handshakeTimeoutMs })` (default 10 s, node's own is 120 s): a client that opens
 * TCP and never sends a ClientHello is dropped when it passes, so after a restart a box whose
 * handshake the busy server cannot finish retries on its backoff instead of hanging. Shrunk here.
 */
import { connect } from "node:net";
import { describe, expect, it } from "vitest";
import { createServer, HANDSHAKE_TIMEOUT_MS } from "@lcp/rpc";
import { createTestPki } from "@lcp/testing/pki";
import { startTestServer } from "@lcp/testing/server";
import { bareServerOptions } from "./bare-server-options.js";
import { newCalls, signingStub } from "./fixtures.js";

/** Opens a TCP connection, sends nothing, and resolves with how long the server kept it. */
function silentClient(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let openedAt = 0;
    socket.once("connect", () => (openedAt = performance.now()));
    socket.once("error", reject);
    socket.resume();
    socket.once("close", () => resolve(performance.now() - openedAt));
  });
}

describe("the TLS handshake timeout", () => {
  it("drops a client that opens TCP and sends nothing once the configured timeout passes", async () => {
    const t = await startTestServer({ name: "signing-keys", register: signingStub(newCalls()), handshakeTimeoutMs: 300 });
    try {
      const kept = await silentClient(t.server.port);
      expect(kept).toBeGreaterThanOrEqual(250);
      expect(kept).toBeLessThan(3_000);
    } finally {
      await t.close();
    }
  });

  it("keeps the 10 s default", () => {
    expect(HANDSHAKE_TIMEOUT_MS).toBe(10_000);
  });

  it("refuses a timeout that is not a positive number of milliseconds", async () => {
    const options = await bareServerOptions(await createTestPki(), "signing-keys", signingStub(newCalls()));
    await expect(createServer({ ...options, handshakeTimeoutMs: -1 })).rejects.toThrow(/handshakeTimeoutMs/);
    await expect(createServer({ ...options, handshakeTimeoutMs: Number.NaN })).rejects.toThrow(/handshakeTimeoutMs/);
  });
});
