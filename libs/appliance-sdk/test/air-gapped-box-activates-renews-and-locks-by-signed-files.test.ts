import { stat } from "node:fs/promises";
import { afterEach, describe, expect, it } from "vitest";
import { pendingRequestPath, type Appliance, type RenewalDueEvent } from "@lcp/appliance-sdk";
import { verifyRenewalRequest } from "@lcp/tokens";
import { createAirGap, LEASE_MS, type AirGap } from "./support/air-gap.js";
import { record } from "./support/fixture.js";
import { DEPLOYMENT_ID } from "./support/scripted-server.js";

let gap: AirGap;
afterEach(async () => gap?.world.close());

/** An air-gapped box activated by files (seq 1). */
async function activatedBox(): Promise<Appliance> {
  gap = await createAirGap();
  const box = await gap.make();
  await box.importResponse(await gap.answerActivation(await box.writeActivationRequest()));
  return box;
}

describe("an air-gapped box (no baseUrl)", () => {
  it("activates by files without dialling, and its pending request and then its state survive a reboot", async () => {
    gap = await createAirGap();
    const box = await gap.make();
    expect(box.status()).toMatchObject({ airGapped: true, activated: false, pendingRequest: null });
    await expect(box.activate()).rejects.toMatchObject({ name: "ActivationError", code: "AIR_GAPPED" });
    await expect(box.sendHeartbeatOnce()).rejects.toMatchObject({ name: "OfflineFileError", code: "AIR_GAPPED" });

    const request = await box.writeActivationRequest();
    expect(request).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    const pendingFile = pendingRequestPath(gap.world.stateFile);
    expect((await stat(pendingFile)).mode & 0o777).toBe(0o600);

    // The operator takes days: the box reboots meanwhile, and the answer still imports.
    await gap.world.clock.advance(2 * 86_400_000);
    const rebooted = await gap.make();
    expect(rebooted.status().pendingRequest).toEqual({ kind: "activation", createdAt: expect.any(Number) });
    const result = await rebooted.importResponse(await gap.answerActivation(request));
    expect(result).toMatchObject({ kind: "activation", answer: "ACTIVE", deploymentId: DEPLOYMENT_ID, leaseSeq: 1, state: { state: "ACTIVE" } });
    expect(result.renewAt).toBe(Math.floor(gap.world.clock.now() / 1000) * 1000 + LEASE_MS / 2);
    await expect(stat(pendingFile)).rejects.toMatchObject({ code: "ENOENT" });
    expect((await stat(gap.world.stateFile)).mode & 0o777).toBe(0o600);
    // Never dialled: its health is its lease, so it is ACTIVE (not GRACE) while unconnected.
    expect(rebooted.status()).toMatchObject({ state: "ACTIVE", connected: false, activated: true, pendingRequest: null, renewAt: result.renewAt });
    expect(gap.world.server.activations).toHaveLength(0);

    const again = await gap.make();
    expect(again.status()).toMatchObject({ state: "ACTIVE", activated: true, leaseSeq: 1, renewAt: result.renewAt, deploymentId: DEPLOYMENT_ID });
  });

  it("says when renewal is due, renews by files to the next seq, and locks when the lease runs out unrenewed", async () => {
    const box = await activatedBox();
    const { clock } = gap.world;
    const events = record(box);
    const due: RenewalDueEvent[] = [];
    box.on("renewal-due", (e) => due.push(e));
    box.start();
    expect(box.state()).toEqual({ state: "ACTIVE" });

    const renewAt = box.status().renewAt!;
    await clock.advanceTo(renewAt - 1);
    expect(due).toHaveLength(0);
    await clock.advance(1);
    expect(due).toEqual([{ renewAt, leaseExpiresAt: box.status().leaseExpiresAt }]);
    await clock.advance(10_000);
    expect(due).toHaveLength(1);

    const request = await box.writeRenewalRequest({ scans: 7 });
    const verified = await verifyRenewalRequest(request);
    expect(verified.ok && verified.claims).toMatchObject({ seq: 1, use: { scans: 7 }, dep: DEPLOYMENT_ID });
    expect(box.status().pendingRequest).toMatchObject({ kind: "renewal" });
    const before = box.status().leaseExpiresAt!;
    const result = await box.importResponse(await gap.answerRenewal(request));
    expect(result).toMatchObject({ kind: "renewal", answer: "ACTIVE", leaseSeq: 2, state: { state: "ACTIVE" } });
    expect(result.renewAt).toBeGreaterThan(renewAt);
    expect(box.status()).toMatchObject({ leaseSeq: 2, renewAt: result.renewAt, pendingRequest: null });
    expect(box.status().leaseExpiresAt).toBeGreaterThan(before);
    expect((await gap.make()).status()).toMatchObject({ leaseSeq: 2, renewAt: result.renewAt });

    // Due again at the new renewAt; nobody renews; the lease runs out by the box's clock.
    const exp = box.status().leaseExpiresAt!;
    await clock.advanceTo(exp - 1);
    expect(due.map((e) => e.renewAt)).toEqual([renewAt, result.renewAt]);
    expect(box.state()).toEqual({ state: "ACTIVE" });
    await clock.advance(1);
    expect(events.states.at(-1)).toMatchObject({ state: "LOCKED", reason: "LEASE_EXPIRED", at: exp });
    // ACTIVE was reported at the import, before `record`: never GRACE on the way.
    expect(events.states.map((s) => s.state)).toEqual(["LOCKED"]);
  });

  it("a LOCKED REVOKED answer revokes the box, and it stays revoked after a reboot", async () => {
    const box = await activatedBox();
    const request = await box.writeRenewalRequest();
    const result = await box.importResponse(await gap.answerRenewal(request, { locked: "REVOKED" }));
    expect(result).toMatchObject({ kind: "renewal", answer: "LOCKED", lockReason: "REVOKED", state: { state: "LOCKED", reason: "REVOKED" } });
    expect(box.status()).toMatchObject({ renewAt: null, pendingRequest: null });
    expect((await gap.make()).state()).toEqual({ state: "LOCKED", reason: "REVOKED" });
  });

  it("a LOCKED REBOUND answer locks the box (persisted), and a later ACTIVE answer to its own request lifts it", async () => {
    const box = await activatedBox();
    await box.importResponse(await gap.answerRenewal(await box.writeRenewalRequest(), { locked: "REBOUND" }));
    expect(box.state()).toEqual({ state: "LOCKED", reason: "LOCK_DIRECTIVE" });
    expect((await gap.make()).state()).toEqual({ state: "LOCKED", reason: "LOCK_DIRECTIVE" });
    const reloaded = await gap.make();
    const result = await reloaded.importResponse(await gap.answerRenewal(await reloaded.writeRenewalRequest()));
    expect(result).toMatchObject({ answer: "ACTIVE", leaseSeq: 2, state: { state: "ACTIVE" } });
  });

  it("a LOCKED answer to a first activation leaves the box unactivated and consumes the request", async () => {
    gap = await createAirGap();
    const box = await gap.make();
    const result = await box.importResponse(await gap.answerActivation(await box.writeActivationRequest(), { locked: "REVOKED" }));
    expect(result).toMatchObject({ kind: "activation", answer: "LOCKED", lockReason: "REVOKED", leaseSeq: null });
    expect(box.status()).toMatchObject({ activated: false, state: "LOCKED", pendingRequest: null });
    expect(() => box.start()).toThrow(/import an activation response/);
  });
});
