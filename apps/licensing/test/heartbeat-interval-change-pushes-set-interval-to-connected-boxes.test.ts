/**
 * UpdateSettings changing heartbeat_interval reaches every connected box as SET_INTERVAL, on
 * every replica: two licensing replicas share the database, one box streams to each, and the
 * change is made through the first. Each replica notices the new setting within its poll
 * (JWKS_MAX_AGE, 300 ms here) and pushes it to its own boxes, which adopt the new interval.
 * Coalesced: three changes in a row reach a box at most twice, the last value last, and nothing
 * is written per box (no directive rows).
 */
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import type { Appliance, DirectiveEvent } from "@lcp/appliance-sdk";
import { testDatabases } from "@lcp/testing/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LicensingApp } from "../src/app.js";
import { createSdkBoxes, startReplica, until } from "./heartbeat-support.js";
import { provisionOnPrem, startHarness, type LicensingHarness } from "./support.js";

const POLL_MS = 300;

describe.each(testDatabases())("a heartbeat interval change is pushed to connected boxes ($name)", (tdb) => {
  let h: LicensingHarness;
  let second: LicensingApp;
  let boxes: Awaited<ReturnType<typeof createSdkBoxes>>;
  beforeAll(async () => {
    h = await startHarness(tdb, { jwksMaxAgeMs: POLL_MS });
    second = await startReplica(h, { jwksMaxAgeMs: POLL_MS });
    boxes = await createSdkBoxes();
  });
  afterAll(async () => {
    await boxes?.stopAll();
    await second?.close();
    await h?.close();
  });

  const setInterval = (ms: number) => h.admin("super_admin").updateSettings({ settings: { heartbeatInterval: durationFromMs(ms) } });

  it("every connected box, on either replica, gets SET_INTERVAL once per change and runs at it", async () => {
    const connected: { box: Appliance; events: DirectiveEvent[] }[] = [];
    for (const baseUrl of [h.licensing.url, second.url]) {
      const { license } = await provisionOnPrem(h);
      const box = await boxes.box(h, license, { baseUrl });
      await box.activate();
      const events: DirectiveEvent[] = [];
      box.on("directive", (d) => events.push(d));
      box.start();
      connected.push({ box, events });
    }
    await until(() => connected.every((c) => c.box.status().connected), "both boxes connect");
    expect(connected.map((c) => c.box.status().heartbeatIntervalMs)).toEqual([60_000, 60_000]);

    await setInterval(2_000);
    await until(() => connected.every((c) => c.events.length > 0 && c.box.status().heartbeatIntervalMs === 2_000), "both boxes run at 2 s", POLL_MS + 3_000);
    for (const c of connected) expect(c.events.filter((d) => d.type === "SET_INTERVAL").map((d) => d.outcome)).toEqual(["applied"]);

    // Three changes in a row: coalesced into at most two pushes per box, ending on the last value.
    await setInterval(3_000);
    await setInterval(4_000);
    await setInterval(5_000);
    await until(() => connected.every((c) => c.box.status().heartbeatIntervalMs === 5_000), "both boxes run at 5 s", POLL_MS + 3_000);
    await new Promise((r) => setTimeout(r, 3 * POLL_MS));
    for (const c of connected) {
      const pushes = c.events.filter((d) => d.type === "SET_INTERVAL").length - 1;
      expect(pushes).toBeGreaterThanOrEqual(1);
      expect(pushes).toBeLessThanOrEqual(2);
      expect(c.box.status().heartbeatIntervalMs).toBe(5_000);
    }
    expect(await h.sql("select type from directive where type = 'SET_INTERVAL'")).toEqual([]);
  });
});
