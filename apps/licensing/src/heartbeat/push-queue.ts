/**
 * The outgoing side of one heartbeat stream: acks and pushed directives are queued here from
 * anywhere (the reader of the box's messages, the hub, a background lease renewal) and the
 * handler's response generator drains it. A bounded queue: a box that stops reading its stream
 * while we keep pushing is cut off (ResourceExhausted) instead of growing our heap.
 */
import { DomainError } from "@lcp/rpc";

/** A single-consumer async queue with an end and a failure. */
export interface PushQueue<T> extends AsyncIterable<T> {
  push(item: T): void;
  /** Ends the stream after the queued items. */
  close(): void;
  /** Ends the stream with `error` after the queued items. */
  fail(error: unknown): void;
  readonly ended: boolean;
}

/** Creates a queue holding at most `limit` undelivered items. */
export function createPushQueue<T>(limit = 1_000): PushQueue<T> {
  const items: T[] = [];
  let head = 0;
  let ended = false;
  let error: unknown = undefined;
  let failed = false;
  let wake: (() => void) | null = null;

  const signal = () => {
    const w = wake;
    wake = null;
    w?.();
  };

  return {
    get ended() {
      return ended;
    },
    push(item) {
      if (ended) return;
      if (items.length - head >= limit) {
        ended = true;
        failed = true;
        error = new DomainError("RESOURCE_EXHAUSTED", "the appliance is not reading its heartbeat stream");
      } else {
        items.push(item);
      }
      signal();
    },
    close() {
      ended = true;
      signal();
    },
    fail(e) {
      if (ended) return;
      ended = true;
      failed = true;
      error = e;
      signal();
    },
    async *[Symbol.asyncIterator]() {
      for (;;) {
        if (head < items.length) {
          const item = items[head]!;
          items[head++] = undefined as T;
          // Compact now and then so a long-lived stream does not keep a growing array.
          if (head > 64 && head * 2 > items.length) {
            items.splice(0, head);
            head = 0;
          }
          yield item;
          continue;
        }
        if (ended) {
          if (failed) throw error;
          return;
        }
        await new Promise<void>((resolve) => (wake = resolve));
      }
    },
  };
}

/**
 * A token bucket per stream: `burst` messages at once, `perSecond` sustained. A box beats once an
 * interval (≥ 1 s), so anything near 10 messages a second for long is a bug or an attack. Two
 * numbers per held stream; the limits, shared by every stream, are passed to {@link take}.
 */
export class RateLimiter {
  private tokens: number;
  private last: number;

  constructor(burst: number, nowMs: number = performance.now()) {
    this.tokens = burst;
    this.last = nowMs;
  }

  /** Takes one token; false when the bucket is empty. */
  take(perSecond: number, burst: number, nowMs: number = performance.now()): boolean {
    this.tokens = Math.min(burst, this.tokens + ((nowMs - this.last) * perSecond) / 1000);
    this.last = nowMs;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
