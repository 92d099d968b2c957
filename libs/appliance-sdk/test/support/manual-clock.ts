/**
 * A fake clock and scheduler for the SDK's `clock` and `scheduler` options. Timers run on a
 * monotonic time that only `advance` moves; `setWall` moves the wall clock alone, as when someone
 * changes the box's clock (timers, like node's, do not notice).
 */
import type { Scheduler } from "@lcp/appliance-sdk";

interface Timer {
  id: number;
  due: number;
  fn: () => void;
}

/** Lets pending promise chains and in-memory transport hops run. */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}

/** Polls `condition` in real time until it holds (async crypto, in-memory RPC hops). */
export async function waitFor(condition: () => boolean, what = "condition", timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** The fake clock: `now` is the box's wall clock; timers fire only inside `advance`. */
export class ManualClock implements Scheduler {
  private mono = 0;
  private offset: number;
  private readonly start: number;
  private nextId = 1;
  private timers: Timer[] = [];

  constructor(start: number) {
    this.offset = start;
    this.start = start;
  }

  /** The box's wall clock (what the SDK gets as `clock`). */
  readonly now = (): number => this.mono + this.offset;

  /** The true time, unaffected by `setWall` (what the control plane's clock reads). */
  readonly trueNow = (): number => this.mono + this.start;

  /** Sets the wall clock (e.g. back in time) without running timers. */
  setWall(t: number): void {
    this.offset = t - this.mono;
  }

  setTimeout(fn: () => void, delayMs: number): unknown {
    const id = this.nextId++;
    this.timers.push({ id, due: this.mono + Math.max(0, delayMs), fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers = this.timers.filter((t) => t.id !== handle);
  }

  /** Pending timers (for assertions). */
  pending(): number {
    return this.timers.length;
  }

  /** Moves time forward, firing each due timer at its own due time, in order, settling after each. */
  async advance(ms: number): Promise<void> {
    const target = this.mono + ms;
    for (;;) {
      const next = this.timers.filter((t) => t.due <= target).sort((a, b) => a.due - b.due || a.id - b.id)[0];
      if (!next) break;
      this.timers = this.timers.filter((t) => t !== next);
      this.mono = Math.max(this.mono, next.due);
      next.fn();
      await settle();
    }
    this.mono = target;
    await settle();
  }

  /** Advances to a wall-clock time. */
  advanceTo(wall: number): Promise<void> {
    return this.advance(wall - this.now());
  }
}
