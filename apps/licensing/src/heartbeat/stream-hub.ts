/**
 * The stream hub: deploymentId → the heartbeat streams this replica holds, and the licensing
 * directive publisher (core/directive-publisher.ts) built on it. After any change commits
 * (revoke, rebind, subscription, reconcile, an operator's SendDirective, a lease renewal) the
 * change path calls `publish(deploymentId, directives)`:
 *
 * - a stream held HERE gets the directives at once and re-reads its deployment's facts;
 * - every OTHER replica hears `{deploymentId}` through the change notifier (PostgreSQL
 *   LISTEN/NOTIFY; in-process on SQLite) and, if it holds a stream for that deployment, loads the
 *   pending directives and pushes them. The directive rows are the truth, the signal only says
 *   "look now"; a signal lost during a LISTEN reconnect is caught by each stream's periodic
 *   re-read and, at worst, by redelivery on the box's next connect.
 */
import type { Settings } from "@lcp/domain";
import type { ChangeNotifier, Database } from "@lcp/persistence";
import type { Directive } from "@lcp/proto/licensing/v1/types_pb";
import type { Logger } from "@lcp/rpc";
import { randomUUID } from "node:crypto";
import type { DirectivePublisher } from "../core/directive-publisher.js";
import { loadSettings } from "../storage/repository.js";
import { HeartbeatPresenceEntity } from "./presence-entity.js";

/** What the hub needs of a held stream. */
export interface HeldStream {
  readonly streamId: string;
  readonly deploymentId: string;
  /** Pushes directives just committed (a stream skips ones it already sent). */
  deliver(directives: readonly Directive[]): void;
  /** The deployment changed somewhere: re-read its facts and pending directives. */
  refresh(): void;
}

/** Options of {@link createStreamHub}. */
export interface StreamHubOptions {
  db: Database;
  log: Logger;
  /** This replica's name (stored with presence rows). */
  replicaId: string;
  notifier: ChangeNotifier;
  now: () => Date;
  /** How long cached settings are used before they are re-read. Default 2 s. */
  settingsTtlMs?: number;
}

/** The hub; it is the app's DirectivePublisher. */
export interface StreamHub extends DirectivePublisher {
  readonly replicaId: string;
  add(stream: HeldStream): void;
  remove(stream: HeldStream): void;
  /** Streams held here for a deployment (0 when none). */
  held(deploymentId: string): number;
  /** All streams held here. */
  size(): number;
  /** The current settings, cached (the beat path reads them synchronously). */
  settings(): Settings;
  /** Reloads the cached settings now (start, tests). */
  reloadSettings(): Promise<Settings>;
  /** Stops listening. */
  close(): void;
}

interface Signal {
  /** deployment id */
  d: string;
  /** the hub instance that published it (it already pushed to its own streams) */
  h: string;
}

/** Creates the hub and subscribes it to the change notifier. */
export async function createStreamHub(options: StreamHubOptions): Promise<StreamHub> {
  const { db, log, notifier, replicaId } = options;
  const ttl = options.settingsTtlMs ?? 2_000;
  // Per process instance, not REPLICA_ID: two replicas misconfigured with one name must still
  // hear each other.
  const instance = randomUUID();
  const streams = new Map<string, Set<HeldStream>>();
  let count = 0;
  let settings = await loadSettings(db.em(), options.now());
  let settingsAt = Date.now();
  let settingsLoading: Promise<Settings> | null = null;

  const reloadSettings = (): Promise<Settings> =>
    (settingsLoading ??= loadSettings(db.em(), options.now())
      .then((s) => {
        settings = s;
        settingsAt = Date.now();
        return s;
      })
      .finally(() => {
        settingsLoading = null;
      }));

  const unsubscribe = notifier.subscribe((payload) => {
    let signal: Signal;
    try {
      signal = JSON.parse(payload) as Signal;
    } catch {
      return;
    }
    if (signal.h === instance || typeof signal.d !== "string") return;
    const held = streams.get(signal.d);
    if (held) for (const s of held) s.refresh();
  });

  return {
    replicaId,
    add(stream) {
      let set = streams.get(stream.deploymentId);
      if (!set) streams.set(stream.deploymentId, (set = new Set()));
      if (!set.has(stream)) count++;
      set.add(stream);
    },
    remove(stream) {
      const set = streams.get(stream.deploymentId);
      if (set?.delete(stream)) count--;
      if (set && set.size === 0) streams.delete(stream.deploymentId);
    },
    held: (deploymentId) => streams.get(deploymentId)?.size ?? 0,
    size: () => count,
    settings() {
      if (Date.now() - settingsAt > ttl && !settingsLoading) {
        void reloadSettings().catch((err: unknown) => log.warn({ err }, "could not reload settings; using the cached ones"));
      }
      return settings;
    },
    reloadSettings,
    async publish(deploymentId, directives) {
      const held = streams.get(deploymentId);
      if (held) {
        for (const s of held) {
          s.deliver(directives);
          s.refresh();
        }
      }
      try {
        await notifier.publish(JSON.stringify({ d: deploymentId, h: instance } satisfies Signal));
      } catch (err) {
        log.warn({ err, deploymentId }, "could not signal other replicas; their streams pick the change up on their next re-read");
      }
      if (held && held.size > 0) return true;
      // Held by another replica? Its presence row says so (written within a second of connecting).
      const row = await db
        .em()
        .findOne(HeartbeatPresenceEntity, { deploymentId }, { disableIdentityMap: true, fields: ["streamId"] })
        .catch(() => null);
      return row !== null;
    },
    close() {
      unsubscribe();
      streams.clear();
      count = 0;
    },
  };
}
