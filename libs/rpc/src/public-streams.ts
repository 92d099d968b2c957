/**
 * A server-wide cap on unauthenticated streams (health Watch, reflection). The per-connection
 * stream limit bounds one connection; anyone may open many connections, and these streams need no
 * credential, so without a cap of their own they pile up across connections (memory, file
 * descriptors) until the process suffers. Past the cap a new one is answered ResourceExhausted;
 * health Check, the probe load balancers use, is unary and never counted.
 */
import { Code, ConnectError } from "@connectrpc/connect";

/** Unauthenticated streams one server holds at once, by default: far above any set of probes or tools. */
export const DEFAULT_MAX_PUBLIC_STREAMS = 1_000;

/** Counts the open unauthenticated streams of one server. */
export interface PublicStreamBudget {
  /** Takes a slot for a new stream, or throws ResourceExhausted when all are taken. */
  enter(procedure: string): void;
  /** Gives the slot back (the stream ended). */
  leave(): void;
  /** Slots taken now. */
  readonly open: number;
}

/** A budget of `max` streams (a positive whole number). */
export function createPublicStreamBudget(max: number = DEFAULT_MAX_PUBLIC_STREAMS): PublicStreamBudget {
  if (!Number.isInteger(max) || max <= 0) throw new TypeError(`maxPublicStreams must be a positive whole number, got ${max}`);
  let open = 0;
  return {
    enter(procedure) {
      if (open >= max) {
        throw new ConnectError(`too many open unauthenticated streams on this server (${max}); ${procedure} refused, retry later`, Code.ResourceExhausted);
      }
      open++;
    },
    leave() {
      open--;
    },
    get open() {
      return open;
    },
  };
}

/** Wraps a streaming handler's output so it holds a slot of `budget` from its start to its end. */
export async function* withinBudget<T>(budget: PublicStreamBudget, procedure: string, messages: () => AsyncIterable<T>): AsyncGenerator<T> {
  budget.enter(procedure);
  try {
    yield* messages();
  } finally {
    budget.leave();
  }
}
