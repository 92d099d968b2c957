/** Reconnect delays for the heartbeat stream. */

/** Options of the reconnect backoff. */
export interface BackoffOptions {
  /** First delay, and the floor of every delay. Default 1 s. */
  readonly initialMs: number;
  /** Ceiling of the exponential growth. Default 60 s. */
  readonly maxMs: number;
}

/** The defaults: 1 s doubling to at most 60 s. */
export const DEFAULT_BACKOFF: Readonly<BackoffOptions> = Object.freeze({ initialMs: 1_000, maxMs: 60_000 });

/**
 * The delay before reconnecting after the server ended our stream because a newer one of the same
 * deployment replaced it (STREAM_REPLACED): in the top half of the longest window. The usual
 * backoff restarts at `initialMs` after a healthy stream, so two processes sharing one certificate
 * would take the stream from each other every second or two; this way each holds it for minutes.
 */
export function replacedDelay(options: BackoffOptions, random: () => number = Math.random): number {
  const max = Math.max(1, options.initialMs, options.maxMs);
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.round(max / 2 + (r * max) / 2);
}

/**
 * The delay before reconnect attempt `attempt` (0-based): uniformly random between `initialMs`
 * and `min(maxMs, initialMs · 2^(attempt+1))`. Full jitter rather than a fixed schedule because
 * after a licensing restart ten thousand boxes fail at the same instant; spreading their retries
 * over the whole window is what lets the server take them back without a handshake storm. The
 * first window is already [initial, 2·initial]: a window of zero width (as `2^attempt` gave)
 * sent every box back in the same millisecond.
 */
export function backoffDelay(attempt: number, options: BackoffOptions, random: () => number = Math.random): number {
  const initial = Math.max(1, options.initialMs);
  const max = Math.max(initial, options.maxMs);
  // Cap the exponent so 2^attempt never overflows to Infinity on a box offline for weeks.
  const cap = Math.min(max, initial * 2 ** Math.min(Math.max(0, attempt) + 1, 30));
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.round(initial + r * (cap - initial));
}
