/**
 * Race: 20 concurrent Activate calls for one licence with 20 different fingerprints → exactly one
 * binds, 19 are refused FailedPrecondition (FINGERPRINT_MISMATCH) and audited, and exactly one
 * certificate is recorded — on SQLite and on PostgreSQL (compare-and-set on the deployment's version).
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { errorReason } from "@lcp/rpc";
import { testDatabases } from "@lcp/testing/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { activateBox, newBox, provisionOnPrem, startHarness, type LicensingHarness } from "./support.js";

describe.each(testDatabases())("activation race ($name)", (tdb) => {
  let h: LicensingHarness;
  beforeAll(async () => {
    h = await startHarness(tdb);
  });
  afterAll(async () => {
    await h?.close();
  });

  it("binds exactly one of 20 boxes", async () => {
    const { deployment, license } = await provisionOnPrem(h);
    const boxes = await Promise.all(Array.from({ length: 20 }, (_, i) => newBox(h, deployment.id, `racing-box-${i}`)));
    const results = await Promise.allSettled(boxes.map((box) => activateBox(h, license, box)));
    const won = results.filter((r) => r.status === "fulfilled");
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === "rejected").map((r) => ConnectError.from(r.reason));
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(19);
    for (const err of lost) {
      expect(Code[err.code], err.message).toBe("FailedPrecondition");
      expect(errorReason(err)).toBe("FINGERPRINT_MISMATCH");
    }
    const certificates = await h.sql(`select serial_number from certificate where deployment_id = '${deployment.id}'`);
    expect(certificates).toHaveLength(1);
    // Every refusal is accounted for: each box (its fingerprint hash) is a kind of its own, and any
    // repeats of a kind come as a count when its window closes (here: at shutdown).
    await h.licensing.close();
    const activations = await h.sql<{ payload: string }>("select payload from outbox_event where action = 'license.activate' order by seq");
    const events = activations.map((a) => JSON.parse(a.payload) as { outcome: string; details?: { repeated?: { count: number } } });
    expect(events.filter((e) => e.outcome === "OUTCOME_SUCCESS")).toHaveLength(1);
    const denied = events.filter((e) => e.outcome === "OUTCOME_DENIED");
    expect(denied.map((e) => e.details?.repeated?.count ?? 1).reduce((a, b) => a + b, 0)).toBe(19);
    const [row] = await h.sql<{ fingerprint_hash: string; version: number | string }>(
      `select fingerprint_hash, version from deployment where id = '${deployment.id}'`,
    );
    expect(row!.fingerprint_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(Number(row!.version)).toBe(2);
  });
});
