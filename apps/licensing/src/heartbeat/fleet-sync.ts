/**
 * How a replica learns that the key set or the heartbeat interval changed, and tells its boxes.
 *
 * Several replicas share one database and one signing-keys, and any of them may take the
 * UpdateSettings call (signing-keys takes RotateKeys/RevokeKey, with no word to licensing at
 * all). So each replica polls what it already reads, every `everyMs` (JWKS_MAX_AGE, default
 * 5 s): the JWKS through the gateway (which refetches it at that age anyway, to bound a revoked
 * key's life here) and the settings row (one indexed read). When the set of key ids or the
 * interval differs from what this replica last saw, it broadcasts REFRESH_KEYS or SET_INTERVAL to
 * the boxes it holds (fleet-broadcast.ts). No change row, no signal to lose: a replica that missed
 * a change while down sees the difference at its first poll, and a box that was offline compares
 * key ids at its next hello.
 */
import type { Settings } from "@lcp/domain";
import type { Logger } from "@lcp/rpc";
import type { JwksSnapshot } from "../signing-keys.js";
import type { FleetBroadcaster } from "./fleet-broadcast.js";
import { keySetsEqual, refreshKeysDirective, setIntervalDirective } from "./key-set.js";

/** Options of {@link createFleetSync}. */
export interface FleetSyncOptions {
  /** The JWKS as the gateway serves it (refetched once older than its max age). */
  jwks: () => Promise<JwksSnapshot>;
  /** Reads the settings row now (the hub's reload, so its cache is refreshed on the way). */
  settings: () => Promise<Settings>;
  /** The interval this replica runs with at start (the hub's cached settings). */
  initialIntervalMs: number;
  broadcaster: FleetBroadcaster;
  log: Logger;
  now: () => Date;
  /** How often to look. */
  everyMs: number;
}

/** The running poll. */
export interface FleetSync {
  /** One look now (start, tests); never rejects. */
  check(): Promise<void>;
  close(): void;
}

/** Starts polling (see the module comment); call `check()` once to look at start. */
export function createFleetSync(options: FleetSyncOptions): FleetSync {
  const { broadcaster, log } = options;
  // Unknown until the first fetch succeeds; that first set is broadcast too (a no-op for boxes that
  // hold it), in case boxes connected while signing-keys could not be reached.
  let kids: ReadonlySet<string> | null = null;
  let intervalMs = options.initialIntervalMs;
  let checking: Promise<void> | null = null;

  async function look(): Promise<void> {
    try {
      const jwks = await options.jwks();
      if (kids === null || !keySetsEqual(kids, jwks.kids)) {
        if (kids !== null) log.info({ from: [...kids], to: [...jwks.kids] }, "the signing key set changed; pushing REFRESH_KEYS to connected boxes");
        kids = jwks.kids;
        broadcaster.broadcast("REFRESH_KEYS", refreshKeysDirective(jwks, options.now()));
      }
    } catch (err) {
      log.warn({ err: (err as Error).message }, "could not read the JWKS from signing-keys; checked again next period");
    }
    try {
      const settings = await options.settings();
      if (settings.heartbeatIntervalMs !== intervalMs) {
        log.info({ from: intervalMs, to: settings.heartbeatIntervalMs }, "the heartbeat interval changed; pushing SET_INTERVAL to connected boxes");
        intervalMs = settings.heartbeatIntervalMs;
        broadcaster.broadcast("SET_INTERVAL", setIntervalDirective(intervalMs, options.now()));
      }
    } catch (err) {
      log.warn({ err: (err as Error).message }, "could not read the settings; checked again next period");
    }
  }

  const check = (): Promise<void> =>
    (checking ??= look().finally(() => {
      checking = null;
    }));
  const timer = setInterval(() => void check(), options.everyMs);
  timer.unref();
  return {
    check,
    close() {
      clearInterval(timer);
      broadcaster.close();
    },
  };
}
