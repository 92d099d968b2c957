/**
 * RotateKeys + RevokeKey in signing-keys reach the boxes without anyone sending REFRESH_KEYS:
 * licensing sees the key set change within JWKS_MAX_AGE (300 ms here) and pushes REFRESH_KEYS to
 * every box connected to it. A real SDK box adopts the set without the revoked key, keeps its
 * state on its lease (signed by that key) only while it reconnects for a fresh one — it never
 * reports LOCKED, since a host that stops its device on LOCKED would stop care fleet-wide on a
 * routine revocation — and runs ACTIVE on a lease signed by the new key. And a box that was
 * offline (its stream down) during the revocation is told at its next connect, from the key ids
 * its hello carries.
 */
import { join } from "node:path";
import { readStateFile, type DirectiveEvent, type LeaseReplacingEvent, type StateChangeEvent } from "@lcp/appliance-sdk";
import { testDatabases } from "@lcp/testing/db";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createSdkBoxes, until } from "./heartbeat-support.js";
import { kidOf, rotateAndRevoke } from "./signing-admin.js";
import { provisionOnPrem, startHarness, type LicensingHarness } from "./support.js";

const MAX_AGE_MS = 300;

describe.each(testDatabases())("a revoked signing key reaches the boxes ($name)", (tdb) => {
  let h: LicensingHarness;
  let boxes: Awaited<ReturnType<typeof createSdkBoxes>>;
  beforeAll(async () => {
    h = await startHarness(tdb, { jwksMaxAgeMs: MAX_AGE_MS });
  });
  afterEach(async () => {
    await boxes?.stopAll();
  });
  afterAll(async () => {
    await h?.close();
  });

  async function activatedBox() {
    boxes = await createSdkBoxes();
    const { license } = await provisionOnPrem(h);
    const path = join(boxes.dir, "box.json");
    const box = await boxes.box(h, license, { stateFile: path });
    await box.activate();
    const directives: DirectiveEvent[] = [];
    const replacing: LeaseReplacingEvent[] = [];
    const states: StateChangeEvent[] = [];
    box.on("directive", (d) => directives.push(d));
    box.on("lease-replacing", (r) => replacing.push(r));
    box.on("state", (s) => states.push(s));
    return { box, directives, replacing, states, stateFile: () => readStateFile(path)! };
  }

  it("a connected box gets REFRESH_KEYS, drops the revoked key, never reports LOCKED, and runs on a fresh lease", async () => {
    const { box, directives, replacing, states, stateFile } = await activatedBox();
    box.start();
    await until(() => box.status().connected, "the box connects");
    const seqBefore = box.status().leaseSeq!;

    const { revoked, active } = await rotateAndRevoke(h);
    await until(() => directives.some((d) => d.type === "REFRESH_KEYS" && d.outcome === "applied"), "REFRESH_KEYS pushed", MAX_AGE_MS + 3_000);

    await until(() => (box.status().leaseSeq ?? 0) > seqBefore && box.state().state === "ACTIVE", "a fresh lease");
    // Written to the state file right after it is adopted.
    await until(() => stateFile().highestLeaseSeq === box.status().leaseSeq, "the fresh lease stored");
    const st = stateFile();
    expect(st.jwks.keys.map((k) => k.kid)).not.toContain(revoked);
    expect(kidOf(st.leaseToken)).toBe(active);
    expect(st.leaseReplacement).toBeUndefined();
    expect(states.filter((s) => s.state === "LOCKED")).toEqual([]);
    expect(replacing.map((r) => r.keyId)).toEqual([revoked]);
    // Told once per change of the key set, not once per poll. Rotate-then-revoke is one change, or
    // two when a poll falls between them (a slow machine): the new key added, then the old removed.
    const told = directives.filter((d) => d.type === "REFRESH_KEYS").length;
    expect(told).toBeGreaterThanOrEqual(1);
    expect(told).toBeLessThanOrEqual(2);
    await new Promise((r) => setTimeout(r, 3 * MAX_AGE_MS));
    expect(directives.filter((d) => d.type === "REFRESH_KEYS")).toHaveLength(told);
    // A broadcast is written nowhere: no directive rows for it, nothing pending.
    expect(await h.sql("select type from directive where type = 'REFRESH_KEYS'")).toEqual([]);
  });

  it("an offline box drops the revoked key on its next connect", async () => {
    const { box, directives, replacing, states, stateFile } = await activatedBox();
    const seqBefore = box.status().leaseSeq!;
    const { revoked, active } = await rotateAndRevoke(h);
    // Licensing learns of the change while the box is away.
    await new Promise((r) => setTimeout(r, 2 * MAX_AGE_MS));
    expect(stateFile().jwks.keys.map((k) => k.kid)).toContain(revoked);

    box.start();
    await until(() => directives.some((d) => d.type === "REFRESH_KEYS" && d.outcome === "applied"), "REFRESH_KEYS at connect");
    await until(() => (box.status().leaseSeq ?? 0) > seqBefore && box.state().state === "ACTIVE", "a fresh lease");
    // Written to the state file right after it is adopted.
    await until(() => stateFile().highestLeaseSeq === box.status().leaseSeq, "the fresh lease stored");
    const st = stateFile();
    expect(st.jwks.keys.map((k) => k.kid)).not.toContain(revoked);
    expect(kidOf(st.leaseToken)).toBe(active);
    expect(states.filter((s) => s.state === "LOCKED")).toEqual([]);
    expect(replacing.map((r) => r.keyId)).toEqual([revoked]);
  });
});
