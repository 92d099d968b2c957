/**
 * The request side of the heartbeat stream: an async iterable the SDK pushes hello, beats and
 * acks into while connect reads from it. Connect pulls at its own pace, so pushes never block.
 */

/** A push-driven async iterable that ends when closed. */
export interface Outbox<T> extends AsyncIterable<T> {
  /** Queues a message; ignored after {@link Outbox.close}. */
  push(message: T): void;
  /** Ends the iteration after the queued messages. */
  close(): void;
  /** Resolves once every queued message has been taken by the reader (or the outbox closed). */
  drained(): Promise<void>;
}

/** Creates an {@link Outbox}. */
export function createOutbox<T>(): Outbox<T> {
  const queue: T[] = [];
  let closed = false;
  let wake: (() => void) | null = null;
  let drainWaiters: Array<() => void> = [];
  const notifyDrained = () => {
    if (queue.length > 0 && !closed) return;
    const waiters = drainWaiters;
    drainWaiters = [];
    for (const w of waiters) w();
  };
  return {
    push(message) {
      if (closed) return;
      queue.push(message);
      wake?.();
    },
    close() {
      closed = true;
      wake?.();
      notifyDrained();
    },
    drained() {
      if (queue.length === 0 || closed) return Promise.resolve();
      return new Promise((resolve) => drainWaiters.push(resolve));
    },
    async *[Symbol.asyncIterator]() {
      for (;;) {
        if (queue.length > 0) {
          yield queue.shift() as T;
          notifyDrained();
          continue;
        }
        if (closed) return;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = null;
      }
    },
  };
}
