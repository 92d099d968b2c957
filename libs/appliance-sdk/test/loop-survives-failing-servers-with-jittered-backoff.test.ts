import { afterEach, describe, expect, it } from "vitest";
import { DEFAULT_BACKOFF, backoffDelay, replacedDelay } from "@lcp/appliance-sdk";
import { createWorld, record, type World } from "./support/fixture.js";
import { waitFor } from "./support/manual-clock.js";

let world: World;
afterEach(async () => world?.close());

describe("reconnect loop", () => {
  it("survives a server that throws on every call: errors are events, never unhandled rejections, and the box keeps its lease", async () => {
    world = await createWorld({ graceWindowMs: 600_000 });
    const box = await world.make();
    const events = record(box);
    await box.activate();
    world.server.throwing = true;
    box.start();
    // Two simulated minutes of failing reconnects (vitest fails the run on any unhandled error).
    for (let i = 0; i < 120; i++) await world.clock.advance(1_000);
    expect(events.errors.length).toBeGreaterThan(5);
    expect(box.state()).toEqual({ state: "GRACE" });

    // No "error" listener at all must not crash the host either (Node's EventEmitter would throw).
    const bare = await world.make({ stateFile: `${world.dir}/bare/state.json` });
    await bare.activate().catch(() => {});
    world.server.throwing = false;
    await bare.activate();
    world.server.throwing = true;
    bare.start();
    for (let i = 0; i < 20; i++) await world.clock.advance(1_000);

    world.server.throwing = false;
    await world.clock.advance(10_000);
    await waitFor(() => box.status().connected, "recovered");
    expect(box.state()).toEqual({ state: "ACTIVE" });
  });

  it("backs off exponentially with jitter between attempts, capped at maxMs, and resets after a healthy stream", async () => {
    world = await createWorld({ graceWindowMs: 600_000 });
    const box = await world.make({ backoff: { initialMs: 1_000, maxMs: 8_000 }, random: () => 1 });
    await box.activate();
    world.server.unreachable = true;
    const attempts: number[] = [];
    // Count attempts through the error events the loop emits on each failed connect.
    box.on("error", () => attempts.push(world.clock.now()));
    box.start();
    await waitFor(() => attempts.length === 1, "first attempt");
    for (let i = 0; i < 40; i++) await world.clock.advance(1_000);
    const gaps = attempts.slice(1).map((t, i) => t - attempts[i]!);
    // random() = 1 → the top of each window: 2 s, 4 s, 8 s, 8 s…
    expect(gaps.slice(0, 5)).toEqual([2_000, 4_000, 8_000, 8_000, 8_000]);
  });

  it("backoffDelay stays within [initial, min(max, initial·2^(n+1))] for any randomness, the first window included", () => {
    for (let attempt = 0; attempt < 40; attempt++) {
      for (const r of [0, 0.25, 0.5, 0.999]) {
        const d = backoffDelay(attempt, DEFAULT_BACKOFF, () => r);
        expect(d).toBeGreaterThanOrEqual(DEFAULT_BACKOFF.initialMs);
        expect(d).toBeLessThanOrEqual(Math.min(DEFAULT_BACKOFF.maxMs, DEFAULT_BACKOFF.initialMs * 2 ** (attempt + 1)));
      }
    }
    // Boxes dropped at the same instant do not come back at the same instant.
    expect(backoffDelay(0, DEFAULT_BACKOFF, () => 0)).toBe(1_000);
    expect(backoffDelay(0, DEFAULT_BACKOFF, () => 1)).toBe(2_000);
    expect(backoffDelay(1_000, DEFAULT_BACKOFF, () => 1)).toBe(DEFAULT_BACKOFF.maxMs);
  });

  it("replacedDelay (the stream was taken by a newer one) waits in the top half of the longest window", () => {
    expect(replacedDelay(DEFAULT_BACKOFF, () => 0)).toBe(DEFAULT_BACKOFF.maxMs / 2);
    expect(replacedDelay(DEFAULT_BACKOFF, () => 1)).toBe(DEFAULT_BACKOFF.maxMs);
  });
});
