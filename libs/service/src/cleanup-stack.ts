/**
 * A small stand-in for `AsyncDisposableStack` (Node 20 has none): shutdown steps registered as a
 * service starts, run in reverse on close so what was opened first is closed last.
 */
import type { Logger } from "pino";

/** One shutdown step: stop a loop, close a server, flush a buffer. */
export type CleanupStep = () => unknown;

/** Shutdown steps run last-in first-out. */
export interface CleanupStack {
  /** Adds a step; it runs before every step added earlier. */
  defer(step: CleanupStep): void;
  /**
   * Aborted as soon as `close()` begins, so work still starting up (a wait for a dependency)
   * gives up instead of outliving the shutdown.
   */
  readonly signal: AbortSignal;
  /**
   * Runs every step, newest first. A step that fails is logged and the rest still run: a server
   * that failed to close must not leave the database open. Never rejects; idempotent.
   */
  close(): Promise<void>;
}

/** Creates an empty {@link CleanupStack} that logs failed steps to `log`. */
export function createCleanupStack(log: Pick<Logger, "error">): CleanupStack {
  const steps: CleanupStep[] = [];
  const closing = new AbortController();
  let closed: Promise<void> | undefined;
  const run = async () => {
    closing.abort();
    // Popped one at a time, so a step deferred while closing still runs (before the older ones).
    for (let step = steps.pop(); step; step = steps.pop()) {
      try {
        await step();
      } catch (err) {
        log.error({ err }, "shutdown step failed");
      }
    }
  };
  return {
    defer: (step) => void steps.push(step),
    signal: closing.signal,
    close: () => (closed ??= run()),
  };
}
