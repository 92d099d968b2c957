/**
 * Refused calls, audited without letting a flood fill the trail (docs/design.md §7). Anyone who can
 * reach a port can be refused — a call without a token costs the caller nothing — and every
 * refusal was one audit write, awaited before the answer: a loop of bad calls became a loop of
 * writes into every service's database and the audit chain.
 *
 * Now the first refusal of a kind (the same caller, RPC, code and reason) reaches the app's
 * `onDenied` in full, before the caller is answered, as before. The same refusal again within the
 * window is only counted; when the window closes, one more event carries the count, the times of
 * the first and last repeat and the last one's request id. So the trail still accounts for every
 * refusal, in at most two writes per kind per window, and each call's log line still names it.
 * Kinds are tracked up to a cap; past it a new kind is counted under its RPC and code alone (the
 * summary says the callers or reasons were mixed).
 */
import type { DeniedEvent, DeniedRepeats } from "./interceptors.js";
import type { Logger } from "./logger.js";
import { principalId } from "./principal.js";

/** How long repeats of one refusal are counted before their summary is written: a minute. */
export const DEFAULT_DENIED_AUDIT_WINDOW_MS = 60_000;
/** How many kinds of refusal are counted apart at once. */
const MAX_KINDS = 1_000;

/** Options of {@link coalesceDenials}. */
export interface DenialCoalescingOptions {
  /** Repeats within this many ms of a kind's first refusal are counted; 0 writes every refusal. */
  readonly windowMs: number;
  readonly logger: Logger;
}

/** The app's `onDenied`, coalesced. */
export interface CoalescedDenials {
  readonly onDenied: (event: DeniedEvent) => void | Promise<void>;
  /** Writes the summaries of the windows still open (at shutdown, before the database closes). */
  flush(): Promise<void>;
}

/**
 * Options of {@link coalesceRepeats}: the window, and what makes two refusals the same kind. Apps
 * that audit refusals of their own (a handler's domain refusal) coalesce them with the same window
 * as the server's `authz.denied` events, so no kind of refusal is a write per call.
 */
export interface RepeatCoalescingOptions<E> extends DenialCoalescingOptions {
  /** The kind of a refusal: who was refused, for what, and why. Repeats of one kind are counted. */
  readonly kindOf: (event: E) => string;
  /** The coarser kind used past the cap on kinds (e.g. the RPC and code alone). */
  readonly overflowKindOf: (event: E) => string;
  /** Log fields naming a refusal, for a summary that could not be written. */
  readonly describe?: (event: E) => Record<string, unknown>;
}

/** Any refusal, coalesced: `record` it; `flush` at shutdown. */
export interface CoalescedRepeats<E> {
  /** Writes the first refusal of a kind (its promise settles when written); counts its repeats. */
  readonly record: (event: E) => void | Promise<void>;
  /** Writes the summaries of the windows still open (at shutdown, before the database closes). */
  flush(): Promise<void>;
}

/** One kind's open window: its repeats so far (none while `last` is null), times in epoch ms. */
interface Window<E> {
  readonly closesAt: number;
  readonly mixed: boolean;
  repeats: number;
  firstAt: number;
  lastAt: number;
  last: E | null;
}

/** Wraps `write` (the app's `onDenied`) so a refusal repeated within a window is written once more, as a count. */
export function coalesceDenials(write: (event: DeniedEvent) => void | Promise<void>, options: DenialCoalescingOptions): CoalescedDenials {
  const coalesced = coalesceRepeats<DeniedEvent>((event, repeated) => write(repeated ? { ...event, repeated } : event), {
    ...options,
    kindOf: (e) => `${e.principal.kind}\u0000${principalId(e.principal)}\u0000${e.procedure}\u0000${e.code}\u0000${e.reason}`,
    overflowKindOf: (e) => `*\u0000${e.procedure}\u0000${e.code}`,
    describe: (e) => ({ procedure: e.procedure }),
  });
  return { onDenied: coalesced.record, flush: coalesced.flush };
}

/**
 * Wraps `write` so the first refusal of a kind is written in full and its repeats within the
 * window once more, as a count (`repeated`) carried by the last one. See the module comment.
 */
export function coalesceRepeats<E>(
  write: (event: E, repeated?: DeniedRepeats) => void | Promise<void>,
  options: RepeatCoalescingOptions<E>,
): CoalescedRepeats<E> {
  const { windowMs, logger, kindOf, overflowKindOf, describe } = options;
  if (!Number.isInteger(windowMs) || windowMs < 0) throw new TypeError("the denied-audit window must be a whole number of ms, 0 or more");
  if (windowMs === 0) return { record: (event) => write(event), flush: async () => undefined };

  const windows = new Map<string, Window<E>>();
  let timer: NodeJS.Timeout | null = null;
  const pending = new Set<Promise<void>>();

  const summarise = (w: Window<E>) => {
    const last = w.last;
    if (!last) return;
    const repeated: DeniedRepeats = { count: w.repeats, firstAt: new Date(w.firstAt), lastAt: new Date(w.lastAt), mixed: w.mixed };
    const written = Promise.resolve()
      .then(() => write(last, repeated))
      .catch((err: unknown) => logger.error({ err, ...describe?.(last), repeats: repeated.count }, "could not audit repeated refusals"))
      .finally(() => pending.delete(written));
    pending.add(written);
  };

  const closeDue = () => {
    timer = null;
    const now = Date.now();
    let next = Infinity;
    for (const [key, w] of windows) {
      if (w.closesAt <= now) {
        windows.delete(key);
        summarise(w);
      } else {
        next = Math.min(next, w.closesAt);
      }
    }
    if (next !== Infinity) schedule(next - now);
  };
  const schedule = (inMs: number) => {
    if (timer) return;
    timer = setTimeout(closeDue, Math.max(1, inMs));
    timer.unref();
  };

  return {
    record(event) {
      const now = Date.now();
      let key = kindOf(event);
      // Past the cap, a new kind is counted under its coarser kind, even its first refusal.
      const overflow = !windows.has(key) && windows.size >= MAX_KINDS;
      if (overflow) key = `\u0001${overflowKindOf(event)}`;
      let w = windows.get(key);
      if (w && w.closesAt <= now) {
        // Its window ran out and the timer has not come round yet.
        windows.delete(key);
        summarise(w);
        w = undefined;
      }
      if (!w) {
        w = { closesAt: now + windowMs, mixed: overflow, repeats: 0, firstAt: 0, lastAt: 0, last: null };
        windows.set(key, w);
        schedule(windowMs);
        if (!overflow) return write(event);
      }
      if (w.repeats === 0) w.firstAt = now;
      w.repeats += 1;
      w.lastAt = now;
      w.last = event;
      return undefined;
    },
    async flush() {
      if (timer) clearTimeout(timer);
      timer = null;
      for (const w of windows.values()) summarise(w);
      windows.clear();
      await Promise.all([...pending]);
    },
  };
}
