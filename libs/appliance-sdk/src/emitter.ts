/**
 * A small typed event emitter. Node's EventEmitter throws when "error" has no listener, which
 * would let a failed beat crash the host process; this one never throws out of `emit`.
 */

/** A map from event name to the listener signature of that event. */
export type EventMap = { [event: string]: (payload: never) => void };

/** Subscribes to the events of `E`; returns a function that unsubscribes. */
export interface TypedEvents<E extends EventMap> {
  on<K extends keyof E>(event: K, listener: E[K]): () => void;
  off<K extends keyof E>(event: K, listener: E[K]): void;
}

/** The emitting side of {@link TypedEvents}, kept by the owner (the appliance). */
export interface TypedEmitter<E extends EventMap> extends TypedEvents<E> {
  /** Calls every listener of `event`; a throwing listener is reported to `onListenerError`, never rethrown. */
  emit<K extends keyof E>(event: K, payload: Parameters<E[K]>[0]): void;
  /** Removes every listener (on stop, so a stopped appliance holds no references to the host). */
  clear(): void;
}

/** Creates a {@link TypedEmitter}. `onListenerError` sees what a listener threw. */
export function createEmitter<E extends EventMap>(onListenerError: (error: unknown, event: keyof E) => void): TypedEmitter<E> {
  const listeners = new Map<keyof E, Set<(payload: never) => void>>();
  const off = <K extends keyof E>(event: K, listener: E[K]): void => {
    listeners.get(event)?.delete(listener);
  };
  return {
    on(event, listener) {
      let set = listeners.get(event);
      if (!set) listeners.set(event, (set = new Set()));
      set.add(listener);
      return () => off(event, listener);
    },
    off,
    emit(event, payload) {
      const set = listeners.get(event);
      if (!set) return;
      // A copy, so a listener that unsubscribes itself does not skip its neighbour.
      for (const listener of [...set]) {
        try {
          (listener as (p: typeof payload) => void)(payload);
        } catch (error) {
          // The host's bug must not stop the heartbeat loop that keeps the box licensed.
          onListenerError(error, event);
        }
      }
    },
    clear() {
      listeners.clear();
    },
  };
}
