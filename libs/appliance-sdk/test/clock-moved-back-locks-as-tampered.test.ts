import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { createWorld, record, type World } from "./support/fixture.js";
import { waitFor } from "./support/manual-clock.js";

let world: World;
afterEach(async () => world?.close());

const SKEW = 5_000;

describe("clock tampering", () => {
  it("tolerates drift within max_clock_skew but locks as CLOCK_TAMPERED beyond it, and recovers when the clock is put right", async () => {
    world = await createWorld({ maxClockSkewMs: SKEW, graceWindowMs: 600_000 });
    const { clock, server } = world;
    const box = await world.make();
    const events = record(box);
    await box.activate();
    box.start();
    await waitFor(() => (server.current()?.requests.length ?? 0) >= 2, "first beat");
    await clock.advance(20_000);
    expect(box.state()).toEqual({ state: "ACTIVE" });

    // Small drift back: tolerated.
    clock.setWall(clock.trueNow() - (SKEW - 1_000));
    await clock.advance(1_000);
    expect(box.state()).toEqual({ state: "ACTIVE" });

    // Moved back beyond the tolerance: the periodic evaluation notices without any call.
    clock.setWall(clock.trueNow() - (SKEW + 10_000));
    await clock.advance(1_000);
    expect(events.states.at(-1)).toMatchObject({ state: "LOCKED", reason: "CLOCK_TAMPERED" });

    clock.setWall(clock.trueNow());
    await clock.advance(1_000);
    expect(box.state()).toEqual({ state: "ACTIVE" });
  });

  it("still detects a clock set back after a restart, from the watermark in the state file", async () => {
    world = await createWorld({ maxClockSkewMs: SKEW, graceWindowMs: 600_000 });
    const { clock, server } = world;
    const box = await world.make();
    await box.activate();
    box.start();
    await waitFor(() => (server.current()?.requests.length ?? 0) >= 2, "first beat");
    // Two minutes of acks carry the server's time into the watermark.
    await clock.advance(120_000);
    await box.stop();

    // Reboot with the clock wound back a minute (the lease, issued at T0, would look young again).
    clock.setWall(clock.trueNow() - 60_000);
    server.unreachable = true;
    const rebooted = await world.make();
    expect(rebooted.state()).toEqual({ state: "LOCKED", reason: "CLOCK_TAMPERED" });
  });

  it("keeps a watermark written during running (not only at stop), so a power cut cannot erase it", async () => {
    world = await createWorld({ maxClockSkewMs: SKEW, graceWindowMs: 600_000 });
    const { clock, server } = world;
    const box = await world.make();
    await box.activate();
    box.start();
    await waitFor(() => (server.current()?.requests.length ?? 0) >= 2, "first beat");
    await clock.advance(120_000);
    // No stop(): the next boot reads what was persisted while running.
    // Fake time outruns real disk writes here; on a box, the file lags by at most max_clock_skew / 2.
    const persisted = () => (JSON.parse(readFileSync(world.stateFile, "utf8")) as { watermark: number }).watermark;
    await clock.advance(1_000);
    await waitFor(() => persisted() >= clock.trueNow() - SKEW / 2, "watermark written while running");
    clock.setWall(clock.trueNow() - 60_000);
    server.unreachable = true;
    const rebooted = await world.make({ stateFile: world.stateFile });
    expect(rebooted.state()).toEqual({ state: "LOCKED", reason: "CLOCK_TAMPERED" });
  });
});
