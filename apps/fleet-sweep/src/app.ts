/**
 * `startFleetSweep(config)`: the fleet-sweep service assembled from its parts — database, run
 * store and lock, licensing Reconcile client, runner, scheduler, RPC server, outbox relay — used
 * by main.ts and by the tests.
 */
import { hostname } from "node:os";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { FleetSweepService } from "@lcp/proto/fleet/v1/fleet_sweep_service_pb";
import { ReconcileService } from "@lcp/proto/licensing/v1/reconcile_service_pb";
import type { Database } from "@lcp/persistence";
import { createClient } from "@lcp/rpc";
import { startService, type RunningService } from "@lcp/service";
import { v7 as uuidv7 } from "uuid";
import { DEFAULT_LOCK_LEASE_MS, DEFAULT_SWEEP_PARALLELISM, DEFAULT_SWEEP_SCHEDULE_POLL_MS, type FleetSweepConfig } from "./config.js";
import { createSweepStore } from "./storage/sweep-store.js";
import { entities, migrations } from "./storage/schema.js";
import { createFleetSweepHandlers } from "./sweep/handlers.js";
import { createSweepRunner } from "./sweep/runner.js";
import { startScheduler } from "./sweep/scheduler.js";
import { watchSweepSchedule } from "./sweep/sweep-schedule.js";

/**
 * Buckets (seconds) of the sweep run duration: from a small fleet's tens of milliseconds to the
 * half hour a million deployments on a slow database may take; a run past that is worth an alert.
 */
export const SWEEP_DURATION_BUCKETS: readonly number[] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800];

/** The default of `SWEEP_PARALLELISM` (for tools that start the app with explicit settings). */
export { DEFAULT_SWEEP_PARALLELISM } from "./config.js";

/**
 * A running fleet-sweep service; `close()` stops scheduling, ends a run in progress after its page
 * (stored FAILED), then the server, the relay, the database.
 */
export interface FleetSweepApp extends RunningService {
  /** The app's database (tests read the outbox and runs through it). */
  readonly db: Database;
}

/** Starts fleet-sweep: migrates its database, serves FleetSweepService and, unless disabled, sweeps every interval. */
export async function startFleetSweep(config: FleetSweepConfig): Promise<FleetSweepApp> {
  const leaseMs = config.lockLeaseMs ?? DEFAULT_LOCK_LEASE_MS;
  const database = { ...config.database, entities, migrations };
  return startService({ name: "fleet-sweep", config, database, outbox: true }, async ({ db, log, now, metrics, identity, relay, defer, listen, ready }) => {
    const store = createSweepStore({ db, now, owner: `${hostname()}/${process.pid}/${uuidv7().slice(-8)}`, leaseMs });
    await store.ensureLockRow();

    const licensing = createClient(ReconcileService, {
      baseUrl: config.licensingUrl,
      tls: identity,
      timeoutMs: config.reconcileTimeoutMs ?? 30_000,
      // Reconcile is IDEMPOTENT in the contract, so the client retries it on Unavailable.
      retries: config.reconcileRetries ?? 3,
      retryBaseDelayMs: 200,
    });

    // Registered before the runner so a finished run can be counted (sweep duration, transitions).
    // Served as fleet_sweep_run_duration_seconds, fleet_sweep_transitions_total, fleet_sweep_examined_total.
    const sweepDuration = metrics.histogram("run_duration_seconds", "Duration of finished sweep runs.", ["status", "trigger"], SWEEP_DURATION_BUCKETS);
    const sweepTransitions = metrics.counter("transitions_total", "Deployment state transitions applied by sweeps, by from and to state.", ["from", "to"]);
    const sweepExamined = metrics.counter("examined_total", "Deployments examined by sweeps.", []);

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

    const server = await listen({
      // No appliance ever calls this service.
      applianceCa: [],
      register: (router) => router.service(FleetSweepService, createFleetSweepHandlers({ runner, store, defaultPageSize: config.pageSize })),
    });
    // Stopped before the server closes (added after it): the run in progress ends after its
    // current page and is stored FAILED, so the server's drain does not wait on a long sweep.
    defer(() => runner.close());

    if (config.sweepIntervalMs !== null) {
      const scheduler = startScheduler({ runner, intervalMs: config.sweepIntervalMs, pageSize: config.pageSize, log });
      const pollMs = config.sweepSchedulePollMs ?? DEFAULT_SWEEP_SCHEDULE_POLL_MS;
      // Its own client: no retries (the next poll is the retry) and a deadline within the poll period.
      const schedules = createClient(ReconcileService, { baseUrl: config.licensingUrl, tls: identity, timeoutMs: Math.min(pollMs, 10_000), retries: 0 });
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
      defer(() => {
        watch.stop();
        scheduler.stop();
      });
    }

    return { ...ready(server, { licensing: config.licensingUrl, sweepIntervalMs: config.sweepIntervalMs }), db };
  });
}
