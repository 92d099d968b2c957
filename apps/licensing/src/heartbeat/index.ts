/**
 * The heartbeat module, wired by app.ts: the coalescing last-seen writer, the change notifier,
 * the stream hub (which is the app's directive publisher), and the handlers it contributes to
 * ApplianceService (Heartbeat, SendHeartbeat) and LicensingService (ListHeartbeats,
 * SendDirective), plus the raw gRPC Heartbeat transport (raw-heartbeat.ts). Built in two steps
 * because the hub must exist before the core's deps (it is their publisher) and the handlers need
 * those deps.
 */
import type { ServiceImpl } from "@connectrpc/connect";
import { createChangeNotifier, type Database } from "@lcp/persistence";
import type { ApplianceService } from "@lcp/proto/licensing/v1/appliance_service_pb";
import type { LicensingService } from "@lcp/proto/licensing/v1/licensing_service_pb";
import type { Logger, RawStreamHandler, RpcMetrics } from "@lcp/rpc";
import { callContextOf } from "../core/audit.js";
import { auditRefusals, type LicensingDeps } from "../deps.js";
import { createHeartbeatHandlers } from "./appliance-handlers.js";
import { createGrpcHeartbeatHandler, HEARTBEAT_PATH } from "./raw-heartbeat.js";
import { createFleetBroadcaster } from "./fleet-broadcast.js";
import { createFleetSync, type FleetSync } from "./fleet-sync.js";
import { createHelloReads } from "./hello-reads.js";
import { createLastSeenWriter, type LastSeenWriter } from "./last-seen-writer.js";
import { listHeartbeats, sendDirective } from "./operator-handlers.js";
import { HeartbeatPresenceEntity } from "../storage/presence-entity.js";
import { DEFAULT_HEARTBEAT_LIMITS, type HeartbeatContext, type HeartbeatCounters, type HeartbeatLimits } from "./context.js";
import { createHeartbeatStatusReader, type HeartbeatStatusReader } from "./status.js";
import { createStreamHub, type StreamHub } from "./stream-hub.js";

export { HeartbeatPresenceEntity } from "../storage/presence-entity.js";
export type { HeartbeatLimits } from "./context.js";
export type { HeartbeatStatusReader } from "./status.js";
export { HEARTBEAT_PATH } from "./raw-heartbeat.js";

/** Options of {@link createHeartbeatModule}. */
export interface HeartbeatModuleOptions {
  db: Database;
  log: Logger;
  now: () => Date;
  replicaId: string;
  /** Longest wait before a last-seen mark is written (default 1 s). */
  flushEveryMs?: number;
  limits?: Partial<HeartbeatLimits>;
  /** How often held streams are checked against the database (lost signals). Default 30 s. */
  staleCheckMs?: number | undefined;
}

/** The running module. */
export interface HeartbeatModule {
  hub: StreamHub;
  writer: LastSeenWriter;
  /** Heartbeat statuses as this replica sees them (GetDeployment's `heartbeat`). */
  statuses: HeartbeatStatusReader;
  /** The handlers, once the core's deps (with `hub` as their publisher) exist. */
  handlers(deps: LicensingDeps): {
    appliance: Pick<ServiceImpl<typeof ApplianceService>, "heartbeat" | "sendHeartbeat">;
    licensing: Pick<ServiceImpl<typeof LicensingService>, "listHeartbeats" | "sendDirective">;
    /** Heartbeat over plain gRPC on the raw http2 stream: `createServer({ rawStreams })`. */
    rawStreams: Record<string, RawStreamHandler>;
  };
  /**
   * Starts pushing REFRESH_KEYS and SET_INTERVAL to this replica's connected boxes when the key
   * set or the heartbeat interval changes, looking every `everyMs` (fleet-sync.ts); resolves after
   * the first look.
   */
  startFleetSync(deps: LicensingDeps, everyMs: number): Promise<void>;
  /** Adds the heartbeat gauges (held streams, batched statements, pending marks) to the server's /metrics. */
  registerMetrics(metrics: RpcMetrics): void;
  /** Flushes the last marks and stops listening; call after the server closed (streams ended). */
  close(): Promise<void>;
}

/** Creates the hub, the writer and the notifier; clears presence rows a previous run of this replica left behind. */
export async function createHeartbeatModule(options: HeartbeatModuleOptions): Promise<HeartbeatModule> {
  const { db, log, replicaId } = options;
  // A replica that crashed left its streams' rows; they are ours to clear, nobody else's.
  await db.em().nativeDelete(HeartbeatPresenceEntity, { replica: replicaId });
  const notifier = await createChangeNotifier(db, "deployment_changed", log);
  const writer = createLastSeenWriter({ db, log, flushEveryMs: options.flushEveryMs });
  let hub: StreamHub;
  try {
    hub = await createStreamHub({ db, log, replicaId, notifier, now: options.now, staleCheckMs: options.staleCheckMs });
  } catch (err) {
    await notifier.close();
    throw err;
  }
  const limits = { ...DEFAULT_HEARTBEAT_LIMITS, ...options.limits };
  // Replaced by real counters in registerMetrics; sessions read them through the context.
  const counters: HeartbeatCounters = { beat() {}, directivePushed() {}, certificateRenewal() {} };
  let sync: FleetSync | null = null;
  return {
    hub,
    writer,
    statuses: createHeartbeatStatusReader(hub),
    handlers(deps) {
      const ctx: HeartbeatContext = { deps, hub, writer, reads: createHelloReads(db), limits, counters };
      return {
        appliance: createHeartbeatHandlers(ctx),
        rawStreams: { [HEARTBEAT_PATH]: createGrpcHeartbeatHandler(ctx) },
        licensing: {
          listHeartbeats: (req) => listHeartbeats(ctx, req),
          async sendDirective(req, handlerCtx) {
            const call = callContextOf(handlerCtx);
            return auditRefusals(
              deps,
              call,
              { action: "directive.send", resource: { type: "deployment", id: req.deploymentId.slice(0, 64) }, details: { type: req.type } },
              () => sendDirective(ctx, call, req),
            );
          },
        },
      };
    },
    async startFleetSync(deps, everyMs) {
      sync?.close();
      sync = createFleetSync({
        jwks: () => deps.signing.jwks(),
        settings: () => hub.reloadSettings(),
        initialIntervalMs: hub.settings().heartbeatIntervalMs,
        broadcaster: createFleetBroadcaster({ streams: () => hub.all(), log }),
        log,
        now: options.now,
        everyMs,
      });
      await sync.check();
    },
    registerMetrics(metrics) {
      // Names relative to the app's prefix: served as licensing_heartbeat_beats_total and so on.
      const beats = metrics.counter("heartbeat_beats_total", "Heartbeat beats received on streams (rate() gives beats/s).");
      const pushed = metrics.counter("directives_pushed_total", "Directives pushed to connected boxes, by type.", ["type"]);
      const renewals = metrics.counter("certificate_renewals_total", "Appliance certificate renewals, by outcome (recorded, refused, failed).", ["outcome"]);
      counters.beat = () => beats.inc();
      counters.certificateRenewal = (outcome) => renewals.inc({ outcome });
      counters.directivePushed = (type) => pushed.inc({ type });
      metrics.gauge("heartbeat_streams", "Heartbeat streams held by this replica.", [], function () {
        this.set(hub.size());
      });
      // Written by the coalescing writer: the proof that N beats cost one statement, not N. Running
      // totals, so counters, read from the writer at scrape time.
      const statements = (name: string, help: string, read: () => number) =>
        metrics.counter({
          name,
          help,
          collect() {
            this.reset();
            this.inc(read());
          },
        });
      statements("heartbeat_last_seen_statements_total", "Batched last_seen UPDATE statements written since start.", () => writer.statements.lastSeen);
      statements("heartbeat_presence_statements_total", "Batched stream presence statements written since start.", () => writer.statements.presence);
      metrics.gauge("heartbeat_pending_marks", "Last-seen and presence marks waiting for the next flush.", [], function () {
        this.set(writer.pending());
      });
    },
    async close() {
      sync?.close();
      hub.close();
      await writer.close();
      await notifier.close();
    },
  };
}
