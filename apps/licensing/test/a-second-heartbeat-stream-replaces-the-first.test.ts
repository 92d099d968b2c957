/**
 * One live heartbeat stream per deployment, within a replica: when a second stream of the same
 * deployment is admitted (its hello accepted), the first is ended with Aborted and ErrorInfo reason
 * STREAM_REPLACED, on either transport, and the hub holds one stream. A box that redialled leaves
 * no stale stream behind; two processes sharing one certificate (the SDK) do not take the stream
 * from each other in a tight loop: each waits in the top half of its longest backoff window.
 */
import { copyFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import { createAppliance, type Appliance } from "@lcp/appliance-sdk";
import { errorReason } from "@lcp/rpc";
import { testDatabases } from "@lcp/testing/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { beat, FAST, helloOf, metric, rawStream, setSettings, until } from "./heartbeat-support.js";
import { activateBox, newBox, provisionOnPrem, startHarness, TEST_ISSUER, type LicensingHarness } from "./support.js";

const sqlite = testDatabases().filter((d) => d.name === "sqlite");

describe.each(sqlite)("a second heartbeat stream of one deployment ($name)", (tdb) => {
  let h: LicensingHarness;
  beforeAll(async () => {
    h = await startHarness(tdb);
    await setSettings(h, { ...FAST, heartbeatTimeoutMs: 10_000, graceWindowMs: 60_000, leaseRenewAfterMs: 30_000 });
  });
  afterAll(async () => {
    await h?.close();
  });

  it.each([
    ["gRPC", "gRPC"],
    ["Connect", "gRPC"],
    ["gRPC", "Connect"],
  ] as const)("ends the first (%s) with Aborted / STREAM_REPLACED once the second (%s) is admitted", async (first, second) => {
    const { deployment, license } = await provisionOnPrem(h);
    const box = await newBox(h, deployment.id);
    await activateBox(h, license, box);
    const held = await metric(h, "licensing_heartbeat_streams");

    const older = rawStream(h, box, h.licensing.url, first === "gRPC" ? "grpc" : "connect");
    older.send(helloOf(license, box));
    older.send(beat(1n));
    await until(() => older.responses.some((r) => r.kind.case === "ack"), "the first stream's ack");

    const newer = rawStream(h, box, h.licensing.url, second === "gRPC" ? "grpc" : "connect");
    newer.send(helloOf(license, box));
    newer.send(beat(1n));
    const ended = await older.ended;
    expect(ended?.code).toBe(Code.Aborted);
    expect(errorReason(ended)).toBe("STREAM_REPLACED");

    // The newer one carries on, and is the only one held.
    newer.send(beat(2n));
    await until(() => newer.responses.filter((r) => r.kind.case === "ack").length >= 2, "the second stream's acks");
    expect(await metric(h, "licensing_heartbeat_streams")).toBe(held + 1);
    newer.end();
    expect(await newer.ended).toBeUndefined();
  });

  it("two SDK processes sharing one certificate back off instead of fighting over the stream", async () => {
    const dir = await mkdtemp(join(tmpdir(), "lcp-shared-cert-"));
    const boxes: Appliance[] = [];
    try {
      const { license } = await provisionOnPrem(h);
      const options = {
        baseUrl: h.licensing.url,
        caPem: h.pki.ca.certPem,
        licenseId: license.id,
        licenseToken: license.token,
        fingerprint: "cloned-box",
        issuer: TEST_ISSUER,
        trustDomain: h.pki.trustDomain,
        // A short first window: without the replaced backoff each would retake the stream in 50-100 ms.
        backoff: { initialMs: 50, maxMs: 2_000 },
        evaluateEveryMs: 25,
      };
      const a = await createAppliance({ ...options, stateFile: join(dir, "a.json") });
      boxes.push(a);
      await a.activate();
      // The second process: a copy of the first one's state, certificate and key included.
      await copyFile(join(dir, "a.json"), join(dir, "b.json"));
      const b = await createAppliance({ ...options, stateFile: join(dir, "b.json") });
      boxes.push(b);
      let replaced = 0;
      for (const box of [a, b]) box.on("error", (e: unknown) => void (errorReason(e) === "STREAM_REPLACED" && replaced++));
      a.start();
      await until(() => a.status().connected, "the first process streaming");
      b.start();
      await until(() => replaced >= 1, "the first process's stream replaced");
      await new Promise((r) => setTimeout(r, 3_000));
      // Each replaced process waits 1-2 s before it retakes the stream: a few handovers, not dozens.
      expect(replaced).toBeLessThanOrEqual(5);
    } finally {
      for (const box of boxes) await box.stop().catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    }
  });
});
