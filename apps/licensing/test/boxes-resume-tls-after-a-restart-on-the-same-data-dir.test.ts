/**
 * After a kill -9, licensing keeps its TLS session-ticket secret in its data dir, so a box (the
 * real SDK, holding its Heartbeat stream over mTLS) that kept its ticket resumes TLS when licensing
 * comes back on the same port and data dir — and is admitted as the same box, streaming again.
 * With another secret in the file the box's ticket is useless and it silently does a full
 * handshake. The server counts both (`licensing_rpc_server_tls_connections_total{resumed}`).
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { get } from "node:https";
import { join } from "node:path";
import { createAppliance } from "@lcp/appliance-sdk";
import { loadTicketSecret, TICKET_SECRET_FILE } from "@lcp/rpc";
import { testDatabases } from "@lcp/testing/db";
import { metricValue } from "@lcp/testing/metrics";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LicensingApp } from "../src/app.js";
import { createSdkBoxes, FAST, freePort, setSettings, startReplica, until } from "./heartbeat-support.js";
import { provisionOnPrem, startHarness, TEST_ISSUER, type LicensingHarness } from "./support.js";

describe.each(testDatabases())("boxes resume TLS after a licensing restart ($name)", (tdb) => {
  let h: LicensingHarness;
  let port: number;
  let running: LicensingApp | undefined;
  let boxes: Awaited<ReturnType<typeof createSdkBoxes>>;
  beforeAll(async () => {
    h = await startHarness(tdb);
    port = await freePort();
    boxes = await createSdkBoxes();
    await setSettings(h, FAST);
  });
  afterAll(async () => {
    await boxes?.stopAll();
    await running?.close();
    await h?.close();
  });

  /** Licensing on the box's port, with the secret its data dir holds now (as main.ts reads it). */
  const startOnDataDir = async () =>
    startReplica(h, { port, replicaId: "restarted", sessionTicketSecret: await loadTicketSecret({ dataDir: h.db.dataDir, variable: "TLS_TICKET_KEY_FILE" }) });
  const connections = async (resumed: boolean) => metricValue(await scrape(), "licensing_rpc_server_tls_connections_total", { resumed: String(resumed) }) || 0;
  let scrapes = 0;
  // Not through the global agent: it caches TLS sessions per host and port, and its scrape would
  // resume on the next restart too.
  const scrape = () =>
    new Promise<string>((resolve, reject) => {
      scrapes++;
      get(`${running!.url}/metrics`, { ca: h.pki.ca.certPem, agent: false }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (body += chunk));
        res.on("end", () => resolve(body));
      }).on("error", reject);
    });
  // The box's stream as licensing sees it (the SDK's own "connected" also counts a recent activation).
  const streaming = async () => metricValue(await scrape(), "licensing_heartbeat_streams") === 1;
  /** Stops licensing under the held stream, starts it again on the same port, and waits for the box to stream again. */
  const restart = async (between?: () => Promise<void>) => {
    await running!.close();
    await between?.();
    running = await startOnDataDir();
    await until(streaming, "the box streaming again", 10_000);
  };

  it("resumes on the same data dir (the secret file is created 0600), and falls back silently when the file holds another secret", async () => {
    running = await startOnDataDir();
    const file = join(h.db.dataDir, TICKET_SECRET_FILE);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const { license } = await provisionOnPrem(h);
    const box = await boxes.box(h, license, { baseUrl: `https://localhost:${port}` });
    await box.activate();
    box.start();
    await until(streaming, "the stream to be held");

    await restart();
    // The box's one redial resumed (the scrape itself is a full handshake).
    expect(await connections(true)).toBe(1);
    expect(box.state()).toEqual({ state: "ACTIVE" });

    // Another secret (an operator rotated it): the ticket no longer opens, the box reconnects anyway.
    await restart(() => writeFile(file, `${randomBytes(48).toString("base64")}\n`, { mode: 0o600 }));
    expect(await connections(true)).toBe(0);
    expect(box.state()).toEqual({ state: "ACTIVE" });

    // ...and got a ticket under the new secret on that full handshake: the next restart resumes.
    await restart();
    expect(await connections(true)).toBe(1);
  });

  it("refreshes the ticket of a long-held stream on a short full handshake of its own, without touching the stream", async () => {
    running ??= await startOnDataDir();
    const { license } = await provisionOnPrem(h);
    const dir = await mkdtemp(join(tmpdir(), "lcp-ticket-refresh-"));
    const base = { caPem: h.pki.ca.certPem, licenseId: license.id, licenseToken: license.token, issuer: TEST_ISSUER, trustDomain: h.pki.trustDomain };
    const box = await createAppliance({ ...base, baseUrl: `https://localhost:${port}`, fingerprint: "refreshing-box", stateFile: join(dir, "state.json"), ticketRefreshMs: 300 });
    try {
      await box.activate();
      box.start();
      await until(async () => metricValue(await scrape(), "licensing_heartbeat_streams") === 2, "the second stream to be held");
      const fullBefore = (await connections(false)) - scrapes;
      // Refreshes every 300–450 ms; the stream itself stays up (no reconnect: still two streams, no resumption).
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      const refreshes = (await connections(false)) - scrapes - fullBefore;
      expect(refreshes).toBeGreaterThanOrEqual(2);
      expect(refreshes).toBeLessThanOrEqual(6);
      expect(metricValue(await scrape(), "licensing_heartbeat_streams")).toBe(2);
      expect(box.status().connected).toBe(true);
    } finally {
      await box.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
