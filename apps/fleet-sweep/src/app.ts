/**
 * `startFleetSweep(config)`: the fleet-sweep service assembled from its parts — database, run
 * store and lock, licensing Reconcile client, runner, scheduler, RPC server, outbox relay — used
 * by main.ts and by the tests.
 */
import { hostname } from "node:os";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { AuditService } from "@lcp/proto/audit/v1/audit_service_pb";
import { FleetSweepService } from "@lcp/proto/fleet/v1/fleet_sweep_service_pb";
import { OutboxService } from "@lcp/proto/ops/v1/outbox_service_pb";
import { ReconcileService } from "@lcp/proto/licensing/v1/reconcile_service_pb";
import { createOrm, createOutboxRelay, isConnectionError, listQuarantinedEvents, newAuditEvent, registerOutboxMetrics, writeAuditNow, type Database } from "@lcp/persistence";
import { createClient, createLogger, createMetrics, createOutboxAdminService, createServer, deniedAuditFields, isPermanentAuditRefusal, type DeniedEvent } from "@lcp/rpc";
import { v7 as uuidv7 } from "uuid";
import { DEFAULT_LOCK_LEASE_MS, DEFAULT_SWEEP_PARALLELISM, DEFAULT_SWEEP_SCHEDULE_POLL_MS, type FleetSweepConfig } from "./config.js";
import { createSweepStore } from "./storage/sweep-store.js";
import { entities, migrations } from "./storage/schema.js";
import { createFleetSweepHandlers } from "./sweep/handlers.js";
import { createSweepRunner } from "./sweep/runner.js";
import { startScheduler } from "./sweep/scheduler.js";
import { watchSweepSchedule } from "./sweep/sweep-schedule.js";

/** The default of `SWEEP_PARALLELISM` (for tools that start the app with explicit settings). */
export { DEFAULT_SWEEP_PARALLELISM } from "./config.js";

/** A running fleet-sweep service. */
export interface FleetSweepApp {
  /** `https://localhost:<port>`. */
  readonly url: string;
  readonly port: number;
  /** The app's database (tests read the outbox and runs through it). */
  readonly db: Database;
  /** Stops scheduling, ends a run in progress after its page (stored FAILED), the server, the relay, the database. Idempotent. */
  close(): Promise<void>;
}

/** Starts fleet-sweep: migrates its database, serves FleetSweepService and, unless disabled, sweeps every interval. */
export async function startFleetSweep(config: FleetSweepConfig): Promise<FleetSweepApp> {
  const log = config.logger ?? createLogger("fleet-sweep", config.logLevel);
  const now = config.now ?? (() => new Date());
  const leaseMs = config.lockLeaseMs ?? DEFAULT_LOCK_LEASE_MS;

  const db = await createOrm({
    app: "fleet-sweep",
    databaseUrl: config.database.databaseUrl,
    dataDir: config.database.dataDir,
    schema: config.database.schema,
    entities,
    migrations,
    logger: log,
  });
  const cleanups: (() => Promise<void>)[] = [() => db.close()];
  const closeAll = async () => {
    for (const cleanup of cleanups.splice(0).reverse()) {
      await cleanup().catch((err: unknown) => log.error({ err }, "shutdown step failed"));
    }
  };

  try {
    const store = createSweepStore({ db, now, owner: `${hostname()}/${process.pid}/${uuidv7().slice(-8)}`, leaseMs });
    await store.ensureLockRow();

    const serviceTls = { caPem: config.tls.caPem, certPem: config.tls.certPem, keyPem: config.tls.keyPem };
    const licensing = createClient(ReconcileService, {
      baseUrl: config.licensingUrl,
      tls: serviceTls,
      timeoutMs: config.reconcileTimeoutMs ?? 30_000,
      // Reconcile is IDEMPOTENT in the contract, so the client retries it on Unavailable.
      retries: config.reconcileRetries ?? 3,
      retryBaseDelayMs: 200,
    });

    const relay = config.auditUrl
      ? (() => {
          const audit = createClient(AuditService, { baseUrl: config.auditUrl, tls: serviceTls });
          return createOutboxRelay({
            db,
            logger: log,
            deliver: async (events) => void (await audit.append({ events })),
            isPermanentRefusal: isPermanentAuditRefusal,
          });
        })()
      : undefined;

    // Created before the runner so a finished run can be counted (sweep duration, transitions).
    const metrics = createMetrics({ app: "fleet-sweep" });
    registerOutboxMetrics(metrics, db);
    const sweepDuration = metrics.histogram("sweep_duration_seconds", "Duration of finished sweep runs.", ["status", "trigger"], [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900]);
    const sweepTransitions = metrics.counter("sweep_transitions_total", "Deployment state transitions applied by sweeps, by from and to state.", ["from", "to"]);
    const sweepExamined = metrics.counter("sweep_examined_total", "Deployments examined by sweeps.", []);

    const runner = createSweepRunner({
      store,
      now,
      log,
      leaseMs,
      reconcile: (request, options) => licensing.reconcile(request, { signal: options.signal }),
      split: (request, options) => licensing.splitFleet(request, { signal: options.signal }),
      parallelism: config.parallelism ?? DEFAULT_SWEEP_PARALLELISM,
      onFinished: (run) => {
        relay?.notify();
        if (run.finishedAt) sweepDuration.observe({ status: run.status, trigger: run.trigger }, (run.finishedAt.getTime() - run.startedAt.getTime()) / 1000);
        if (!run.dryRun) {
          sweepExamined.inc(run.examined);
          for (const t of run.transitions) sweepTransitions.inc({ from: t.from, to: t.lockReason ? `${t.to}(${t.lockReason})` : t.to }, t.count);
        }
      },
    });

    const onDenied = async (event: DeniedEvent) => {
      await writeAuditNow(db, newAuditEvent({ ...deniedAuditFields(event), now: now() }));
      relay?.notify();
    };

    const server = await createServer({
      transientError: isConnectionError,
      metrics,
      name: "fleet-sweep",
      host: config.host,
      port: config.port,
      tls: config.tls,
      trustDomain: config.trustDomain,
      // No appliance ever calls this service.
      applianceCa: [],
      adminTokens: config.adminTokens,
      onDenied,
      deniedAuditWindowMs: config.deniedAuditWindowMs,
      connectionLimits: config.connectionLimits,
      logger: log,
      ...(config.shutdownGraceMs !== undefined ? { shutdownGraceMs: config.shutdownGraceMs } : {}),
      register: (router) =>
        router
          .service(FleetSweepService, createFleetSweepHandlers({ runner, store, defaultPageSize: config.pageSize }))
          .service(OutboxService, createOutboxAdminService({ list: (page) => listQuarantinedEvents(db, page) })),
    });
    cleanups.push(() => server.close());
    // Stopped before the server closes (cleanups run in reverse): the run in progress ends after
    // its current page and is stored FAILED, so the server's drain does not wait on a long sweep.
    cleanups.push(() => runner.close());

    if (relay) {
      relay.start();
      cleanups.splice(1, 0, () => relay.stop());
    }
    if (config.sweepIntervalMs !== null) {
      const scheduler = startScheduler({ runner, intervalMs: config.sweepIntervalMs, pageSize: config.pageSize, log });
      const pollMs = config.sweepSchedulePollMs ?? DEFAULT_SWEEP_SCHEDULE_POLL_MS;
      // Its own client: no retries (the next poll is the retry) and a deadline within the poll period.
      const schedules = createClient(ReconcileService, { baseUrl: config.licensingUrl, tls: serviceTls, timeoutMs: Math.min(pollMs, 10_000), retries: 0 });
      const watch = watchSweepSchedule({
        read: async (signal) => {
          const { sweepInterval } = await schedules.getSweepSchedule({}, { signal });
          return sweepInterval ? durationMs(sweepInterval) : null;
        },
        defaultMs: config.sweepIntervalMs,
        pollMs,
        scheduler,
        log,
      });
      cleanups.push(async () => {
        watch.stop();
        scheduler.stop();
      });
    }

    let closing: Promise<void> | undefined;
    return {
      url: server.url,
      port: server.port,
      db,
      close: () => (closing ??= closeAll()),
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
