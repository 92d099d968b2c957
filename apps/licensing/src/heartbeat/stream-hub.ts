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
 *   "look now"; a signal lost during a LISTEN reconnect is caught by the hub's periodic check
 *   and, at worst, by redelivery on the box's next connect.
 *
 * One live stream per deployment: when a box's hello is accepted on a new stream, an older stream
 * of the same deployment held HERE is ended with Aborted / STREAM_REPLACED (the newest wins: the
 * box reconnected and its old stream is dead, or two processes share one certificate). Another
 * replica's stream for the same deployment is not ended from here.
 *
 * The periodic check is one pair of batched reads per 500 held deployments (their versions and
 * their unacknowledged directive ids) every `staleCheckMs`; only streams whose deployment moved
 * on, or that have not sent a pending directive, re-read. A re-read per stream on a timer would
 * cost 10,000 streams 300+ queries a second for nothing.
 */
import type { Settings } from "@lcp/domain";
import { yieldToEventLoop, type ChangeNotifier, type Database } from "@lcp/persistence";
import type { Directive } from "@lcp/proto/licensing/v1/types_pb";
import type { Logger } from "@lcp/rpc";
import { randomUUID } from "node:crypto";
import type { DirectivePublisher } from "../core/directive-publisher.js";
import { loadSettings } from "../storage/repository.js";
import { HeartbeatPresenceEntity } from "../storage/presence-entity.js";

/** What the hub needs of a held stream. */
export interface HeldStream {
  readonly streamId: string;
  readonly deploymentId: string;
  /** Pushes directives just committed (a stream skips ones it already sent). */
  deliver(directives: readonly Directive[]): void;
  /** The deployment changed somewhere: re-read its facts and pending directives. */
  refresh(): void;
  /** A newer stream of the same deployment was added: end this one (Aborted, STREAM_REPLACED). */
  replaced(): void;
  /**
   * Whether the stream's cached facts are behind: the deployment's `version` differs from the one
   * it read, or one of `pendingIds` (unacknowledged directives) was never sent on it.
   */
  isStale(version: number, pending: readonly PendingDirective[]): boolean;
}

/** An unacknowledged directive row, as the periodic check reads it. */
export interface PendingDirective {
  id: string;
  createdAtMs: number;
}

/** A datetime column as read raw: epoch milliseconds on SQLite (MikroORM's storage), a Date on PostgreSQL. */
function epochMs(value: Date | number | string): number {
  if (value instanceof Date) return value.getTime();
  if (typeof value === "number") return value;
  return /^\d+$/.test(value) ? Number(value) : new Date(value).getTime();
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
  /** How often held streams are checked against the database (the lost-signal net). Default 30 s. */
  staleCheckMs?: number | undefined;
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
  /** A snapshot of every stream held here (for a fleet-wide broadcast, heartbeat/fleet-broadcast.ts). */
  all(): HeldStream[];
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
  // One stream per deployment (`add` replaces an older one), held directly: no Set per stream.
  const streams = new Map<string, HeldStream>();
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

  // The lost-signal net (module comment): batched reads, then only the stale streams re-read.
  const STALE_CHECK_CHUNK = 500;
  let checking = false;
  const checkStale = async () => {
    const ids = [...streams.keys()];
    for (let i = 0; i < ids.length; i += STALE_CHECK_CHUNK) {
      // Beats first: on SQLite each read below runs on this thread.
      await yieldToEventLoop();
      const chunk = ids.slice(i, i + STALE_CHECK_CHUNK);
      // Plain rows, not entities: hydrating 500 of each held this thread at a stretch (MikroORM's
      // entity factory), longer than a beat may wait.
      const conn = db.em().getConnection();
      const marks = chunk.map(() => "?").join(", ");
      const versions = await conn.execute<Array<{ id: string; version: number | string }>>(`select id, version from deployment where id in (${marks})`, chunk, "all");
      const pending = await conn.execute<Array<{ id: string; deployment_id: string; created_at: Date | number | string }>>(
        `select id, deployment_id, created_at from directive where deployment_id in (${marks}) and acked_at is null`,
        chunk,
        "all",
      );
      const pendingOf = new Map<string, PendingDirective[]>();
      for (const d of pending) {
        const row = { id: d.id, createdAtMs: epochMs(d.created_at) };
        const list = pendingOf.get(d.deployment_id);
        if (list) list.push(row);
        else pendingOf.set(d.deployment_id, [row]);
      }
      for (const row of versions) {
        const rows = pendingOf.get(row.id) ?? [];
        for (const s of heldFor(row.id)) if (s.isStale(Number(row.version), rows)) s.refresh();
      }
    }
  };
  const staleTimer = setInterval(() => {
    if (checking || streams.size === 0) return;
    checking = true;
    checkStale()
      .catch((err: unknown) => log.warn({ err }, "could not check held heartbeat streams against the database; retried next period"))
      .finally(() => {
        checking = false;
      });
  }, options.staleCheckMs ?? 30_000);
  staleTimer.unref();

  const unsubscribe = notifier.subscribe((payload) => {
    let signal: Signal;
    try {
      signal = JSON.parse(payload) as Signal;
    } catch {
      return;
    }
    if (signal.h === instance || typeof signal.d !== "string") return;
    for (const s of heldFor(signal.d)) s.refresh();
  });

  /** The streams held here for a deployment (a copy: refreshing or delivering may end one). */
  function heldFor(deploymentId: string): readonly HeldStream[] {
    const held = streams.get(deploymentId);
    return held === undefined ? [] : [held];
  }

  return {
    replicaId,
    add(stream) {
      const id = stream.deploymentId;
      const older = streams.get(id);
      if (older === stream) return;
      streams.set(id, stream);
      if (older === undefined) count++;
      else {
        // The newest wins: an older stream left behind is dead (the box redialled) or another
        // process with the same certificate; either way two streams must not both act for the box.
        log.info({ deploymentId: id, replaced: older.streamId, by: stream.streamId }, "a newer heartbeat stream replaced an older one");
        older.replaced();
      }
    },
    remove(stream) {
      const id = stream.deploymentId;
      if (streams.get(id) !== stream) return;
      streams.delete(id);
      count--;
    },
    held: (deploymentId) => heldFor(deploymentId).length,
    size: () => count,
    all() {
      const out: HeldStream[] = [];
      for (const held of streams.values()) {
        if (held instanceof Set) out.push(...held);
        else out.push(held);
      }
      return out;
    },
    settings() {
      if (Date.now() - settingsAt > ttl && !settingsLoading) {
        void reloadSettings().catch((err: unknown) => log.warn({ err }, "could not reload settings; using the cached ones"));
      }
      return settings;
    },
    reloadSettings,
    async publish(deploymentId, directives) {
      const held = heldFor(deploymentId);
      for (const s of held) {
        s.deliver(directives);
        s.refresh();
      }
      try {
        await notifier.publish(JSON.stringify({ d: deploymentId, h: instance } satisfies Signal));
      } catch (err) {
        log.warn({ err, deploymentId }, "could not signal other replicas; their streams pick the change up on their next re-read");
      }
      if (held.length > 0) return true;
      // Held by another replica? Its presence row says so (written within a second of connecting).
      const row = await db
        .em()
        .findOne(HeartbeatPresenceEntity, { deploymentId }, { disableIdentityMap: true, fields: ["streamId"] })
        .catch(() => null);
      return row !== null;
    },
    close() {
      clearInterval(staleTimer);
      unsubscribe();
      streams.clear();
      count = 0;
    },
  };
}
