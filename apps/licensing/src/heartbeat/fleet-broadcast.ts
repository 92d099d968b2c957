/**
 * One directive to every box connected to THIS replica: the fleet-wide REFRESH_KEYS (the key set
 * changed) and SET_INTERVAL (the heartbeat interval setting changed). Each replica broadcasts to
 * its own streams only, having noticed the change itself (fleet-sync.ts), so there is no
 * cross-replica signal and no replica pushes to another's boxes.
 *
 * - Written nowhere: a broadcast says what is true now, not an event to redeliver. A box that is
 *   not connected learns the same truth when it next connects (its hello carries its key ids;
 *   session.ts answers a differing set with REFRESH_KEYS). So it has no id: the box's ack of it
 *   is dropped before any statement, and 10,000 boxes cost no writes.
 * - Coalesced per type: while one is being pushed, later broadcasts of the same type collapse into
 *   the newest, pushed once after it — three quick UpdateSettings make two pushes, not three storms.
 * - Pushed in chunks of `chunk` streams with the event loop yielded between them, so beats keep
 *   being acknowledged while 10,000 streams are written to.
 */
import { yieldToEventLoop } from "@lcp/persistence";
import type { Directive } from "@lcp/proto/licensing/v1/types_pb";
import type { Logger } from "@lcp/rpc";
import type { HeldStream } from "./stream-hub.js";

/** The directive types pushed to the whole fleet of a replica. */
export type BroadcastType = "REFRESH_KEYS" | "SET_INTERVAL";

/** Options of {@link createFleetBroadcaster}. */
export interface FleetBroadcasterOptions {
  /** The streams held here, at the time of the call. */
  streams: () => readonly HeldStream[];
  log: Logger;
  /** Streams written to between two yields. Default 500. */
  chunk?: number;
}

/** Broadcasts directives to every stream held here; see the module comment. */
export interface FleetBroadcaster {
  /** Queues `directive` for every held stream, replacing a queued one of the same type. */
  broadcast(type: BroadcastType, directive: Directive): void;
  /** Resolves once nothing is queued or being pushed (tests, shutdown). */
  idle(): Promise<void>;
  /** Drops what is queued; a push in progress stops at its next chunk. */
  close(): void;
}

/** Creates a {@link FleetBroadcaster}. */
export function createFleetBroadcaster(options: FleetBroadcasterOptions): FleetBroadcaster {
  const chunk = options.chunk ?? 500;
  const queued = new Map<BroadcastType, Directive>();
  let draining: Promise<void> | null = null;
  let closed = false;

  async function drain(): Promise<void> {
    while (!closed && queued.size > 0) {
      const [type, directive] = queued.entries().next().value!;
      queued.delete(type);
      const targets = options.streams();
      for (let i = 0; i < targets.length && !closed; i += chunk) {
        if (i > 0) await yieldToEventLoop();
        for (const stream of targets.slice(i, i + chunk)) stream.deliver([directive]);
      }
      options.log.info({ type, streams: targets.length }, "directive broadcast to the connected boxes of this replica");
    }
  }

  function kick(): void {
    if (draining || closed) return;
    draining = drain()
      .catch((err: unknown) => options.log.warn({ err }, "broadcast failed; boxes catch up on their next connect"))
      .finally(() => {
        draining = null;
        // Queued after the loop's last look, before this ran.
        if (queued.size > 0) kick();
      });
  }

  return {
    broadcast(type, directive) {
      if (closed) return;
      queued.set(type, directive);
      kick();
    },
    async idle() {
      while (draining) await draining;
    },
    close() {
      closed = true;
      queued.clear();
    },
  };
}
