/**
 * `startService(options, assemble)`: what every app's `start<App>(config)` shares — the logger,
 * the clock, the database, the outbox relay to audit, the server with the denied-audit hook and
 * connection limits, readiness (health follows the database) and the `ADMIN_PORT` listener, the
 * ready line, and one ordered shutdown. The app assembles its own parts in
 * between and calls `listen` and `ready`.
 */
import type { ServiceName } from "@lcp/domain";
import {
  createOrm,
  createOutboxRelay,
  isConnectionError,
  listQuarantinedEvents,
  newAuditEvent,
  registerOutboxMetrics,
  writeAuditNow,
  type CreateOrmOptions,
  type Database,
  type OutboxRelay,
} from "@lcp/persistence";
import { AuditService } from "@lcp/proto/audit/v1/audit_service_pb";
import { OutboxService } from "@lcp/proto/ops/v1/outbox_service_pb";
import {
  adminTokenVerifierFrom,
  createAdminServer,
  createClient,
  createLogger,
  createMetrics,
  createOutboxAdminService,
  createServer,
  createTlsReloader,
  deniedAuditFields,
  DEFAULT_READINESS_INTERVAL_MS,
  isPermanentAuditRefusal,
  ServingStatus,
  type AdminTokensConfig,
  type AdminTokenVerifierLike,
  type ConnectionLimits,
  type DeniedEvent,
  type Readiness,
  type RpcMetrics,
  type RpcServer,
  type ServerOptions,
  type ServerTls,
  type TlsFiles,
  type TlsReloader,
  type TlsReloadResult,
  type TracingSettings,
} from "@lcp/rpc";
import type { Logger } from "pino";
import { createCleanupStack, type CleanupStep } from "./cleanup-stack.js";
import { createReadinessMonitor, databaseProbe, READY_GAUGE, type ReadinessMonitor } from "./readiness.js";
import { acquireTracing } from "./tracing-sdk.js";

/** The settings of an app's config that the shared lifecycle reads (every app config has them). */
export interface ServiceSettings {
  readonly host?: string | undefined;
  /** 0 picks a free port (tests). */
  readonly port: number;
  /**
   * The listener's certificate and the platform CA; also this app's client identity. With `files`
   * they are read again on `reloadTls()` (SIGHUP) and every `tlsReloadIntervalMs`.
   */
  readonly tls: ServerTls & { readonly files?: TlsFiles | undefined };
  /** `TLS_RELOAD_INTERVAL`: how often the TLS files are looked at; 0 or unset → only on `reloadTls()`. */
  readonly tlsReloadIntervalMs?: number | undefined;
  /** `TLS_TICKET_KEY_FILE`: the session-ticket secret's file, reloaded with the certificate (the secret itself comes in `listen`'s `sessionTickets`). */
  readonly sessionTicketFile?: string | undefined;
  readonly trustDomain: string;
  /** The parsed OIDC / dev issuer settings, or a ready verifier; none → admins are refused. */
  readonly adminTokens?: AdminTokensConfig | AdminTokenVerifierLike | undefined;
  readonly deniedAuditWindowMs?: number | undefined;
  readonly connectionLimits?: ConnectionLimits | undefined;
  readonly shutdownGraceMs?: number | undefined;
  /** `ADMIN_PORT`: the plain-HTTP admin listener (`/healthz`, `/readyz`, `/metrics`); unset → none, 0 → a free port (tests). */
  readonly adminPort?: number | undefined;
  /** `READINESS_INTERVAL`: how often the database is probed for health; default 2 s. */
  readonly readinessIntervalMs?: number | undefined;
  /** Audit's base URL; with an outbox, the relay delivers there. Unset → events wait in the outbox. */
  readonly auditUrl?: string | undefined;
  /** `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`: where trace spans go; unset → no tracing (tracing-sdk.ts). */
  readonly tracing?: TracingSettings | undefined;
  /** Test seams: a logger (else one at `logLevel`), a clock (else the wall clock). */
  readonly logger?: Logger | undefined;
  readonly logLevel?: string | undefined;
  readonly now?: (() => Date) | undefined;
}

/** Options of {@link startService}. */
export interface ServiceOptions {
  readonly name: ServiceName;
  readonly config: ServiceSettings;
  /** Where the app's tables live; migrated on open. */
  readonly database: Omit<CreateOrmOptions, "app" | "logger">;
  /**
   * Whether the app has an audit outbox (every app but audit itself): refused calls are then
   * audited through it, the relay delivers it to `auditUrl`, and OutboxService and the outbox
   * metrics are served.
   */
  readonly outbox: boolean;
}

/** The server options an app chooses; the shared ones (name, port, TLS, limits, hook …) are filled in. */
export type ListenOptions = Partial<Omit<ServerOptions, "name" | "port" | "host" | "tls" | "trustDomain" | "logger" | "metrics" | "register">> &
  Pick<ServerOptions, "register">;

/** A running service, as `start<App>(config)` returns it. */
export interface RunningService {
  /** `https://localhost:<port>`. */
  readonly url: string;
  readonly port: number;
  /** The admin listener's port, when `adminPort` was set. */
  readonly adminPort?: number | undefined;
  /**
   * Reads the TLS files (and ticket secret file) again and serves them to new connections if they
   * changed and pass the checks; open connections and held streams keep theirs. What SIGHUP does.
   */
  reloadTls(): Promise<TlsReloadResult>;
  /** Runs the shutdown steps, newest first (after-listen steps, the server, the app's parts, the relay, the database). Idempotent. */
  close(): Promise<void>;
}

/** What an app assembles its parts with. */
export interface Service {
  readonly log: Logger;
  readonly now: () => Date;
  readonly db: Database;
  /** Shared with the server; apps add their own counters before `listen`. */
  readonly metrics: RpcMetrics;
  /**
   * This app's current certificate and key and the platform CA, for calling other services as
   * itself: pass the function to `createClient({ tls: identity })`, which reads it per new
   * connection, so a rotated certificate is presented from then on.
   */
  readonly identity: () => ServerTls;
  /** The outbox relay to audit (started by `listen`), if this app has an outbox and an `auditUrl`. */
  readonly relay: OutboxRelay | undefined;
  /** Aborted when shutdown begins. */
  readonly stopping: AbortSignal;
  /**
   * Adds a shutdown step. Steps run newest first: one added before `listen` runs after the server
   * has drained its calls; one added after runs before the server closes.
   */
  defer(step: CleanupStep): void;
  /**
   * What `/readyz` says until `listen` (default "starting"), e.g. the dependency the app waits
   * for; no effect once listening.
   */
  startingBecause(reason: string): void;
  /**
   * Starts the server with the shared options and this app's, then the relay and the readiness
   * monitor (health NOT_SERVING while the database does not answer).
   */
  listen(options: ListenOptions): Promise<RpcServer>;
  /** Logs `<name> ready` with the url and `fields`, and hands back the running service. */
  ready(server: RpcServer, fields?: Record<string, unknown>): RunningService;
}

/**
 * Opens the admin listener (if `adminPort` is set) and the database and runs `assemble`; if
 * anything fails on the way, whatever was started is stopped again (newest first) before the
 * error is thrown. Readiness (`/readyz`, `<app>_ready`, health) is "starting" until `listen`,
 * then follows the database probe; liveness (`/healthz`) answers from the first moment on.
 */
export async function startService<T>(options: ServiceOptions, assemble: (service: Service) => Promise<T>): Promise<T> {
  const { name, config } = options;
  const log = config.logger ?? createLogger(name, config.logLevel);
  const now = config.now ?? (() => new Date());
  const cleanup = createCleanupStack(log);
  let currentTls: ServerTls = { caPem: config.tls.caPem, certPem: config.tls.certPem, keyPem: config.tls.keyPem };
  const identity = () => currentTls;
  const metrics = createMetrics({ app: name, logger: log });
  const readyGauge = metrics.gauge(READY_GAUGE, "1 while this replica reports SERVING (started, its database answers), else 0.");
  readyGauge.set(0);
  let server: RpcServer | undefined;
  let monitor: ReadinessMonitor | undefined;
  const readiness = (): Readiness => {
    if (cleanup.signal.aborted) return { ready: false, reason: "shutting down" };
    if (!server) return { ready: false, reason: startingReason };
    if (server.health.getStatus("") === ServingStatus.SERVING) return { ready: true };
    return { ready: false, reason: monitor?.reason ?? "not serving" };
  };
  let adminPort: number | undefined;
  let startingReason = "starting";
  let reloader: TlsReloader | undefined;

  try {
    // Deferred first, so it runs last: every span of the shutdown is ended and flushed with it.
    if (config.tracing) cleanup.defer(await acquireTracing(name, config.tracing, log));
    if (config.adminPort !== undefined) {
      // Opened first and closed last: kubelet's liveness probe answers while the app migrates,
      // waits for a dependency or drains its calls.
      const admin = await createAdminServer({
        host: config.host ?? "127.0.0.1",
        port: config.adminPort,
        metrics,
        readiness,
        serviceStatus: (name) => server?.health.getStatus(name),
        logger: log,
      });
      adminPort = admin.port;
      cleanup.defer(() => admin.close());
    }
    const db = await createOrm({ ...options.database, app: name, logger: log });
    cleanup.defer(() => db.close());
    if (options.outbox) registerOutboxMetrics(metrics, db);
    const relay = options.outbox && config.auditUrl ? auditRelay(name, db, config.auditUrl, identity, log) : undefined;
    // Stopped after everything but the database: the app's last writes (flushed refusals) are in
    // the outbox by then, and a batch in flight is let finish.
    if (relay) cleanup.defer(() => relay.stop());
    const service: Service = {
      log,
      now,
      db,
      metrics,
      identity,
      relay,
      stopping: cleanup.signal,
      defer: cleanup.defer,
      startingBecause(reason) {
        startingReason = `starting: ${reason}`;
      },
      async listen(own) {
        const started = await createServer({
          transientError: isConnectionError,
          ...(options.outbox ? { onDenied: (event: DeniedEvent) => auditDenied(db, relay, event, now()) } : {}),
          deniedAuditWindowMs: config.deniedAuditWindowMs,
          connectionLimits: config.connectionLimits,
          ...(config.shutdownGraceMs !== undefined ? { shutdownGraceMs: config.shutdownGraceMs } : {}),
          ...(config.adminTokens ? { adminTokens: verifierOf(config.adminTokens) } : {}),
          ...own,
          name,
          host: config.host,
          port: config.port,
          tls: config.tls,
          trustDomain: config.trustDomain,
          logger: log,
          metrics,
          register(router) {
            own.register(router);
            if (options.outbox) router.service(OutboxService, createOutboxAdminService({ list: (page) => listQuarantinedEvents(db, page) }));
          },
        });
        cleanup.defer(() => started.close());
        relay?.start();
        server = started;
        if (config.tls.files || config.sessionTicketFile !== undefined) {
          const watcher = createTlsReloader({
            files: config.tls.files,
            ticketKeyFile: config.sessionTicketFile,
            current: { tls: currentTls, ticketSecret: own.sessionTickets?.secret },
            apply: (next) => started.setTls(next),
            onApplied: (tls) => (currentTls = tls),
            intervalMs: config.tlsReloadIntervalMs,
            log,
            metrics,
          });
          reloader = watcher;
          cleanup.defer(() => watcher.stop());
        }
        const probe = createReadinessMonitor({
          probe: databaseProbe(db),
          dependency: "database",
          intervalMs: config.readinessIntervalMs ?? DEFAULT_READINESS_INTERVAL_MS,
          log,
          gauge: readyGauge,
          onChange: (ok) => started.health.setAll(ok ? "SERVING" : "NOT_SERVING"),
        });
        monitor = probe;
        // Stopped before the server closes, so a late probe cannot flip shutdown's NOT_SERVING back.
        cleanup.defer(() => {
          probe.stop();
          readyGauge.set(0);
        });
        return started;
      },
      ready(server, fields = {}) {
        log.info({ url: server.url, ...fields }, `${name} ready`);
        return {
          url: server.url,
          port: server.port,
          adminPort,
          reloadTls: async () => {
            if (reloader) return reloader.reload({ force: true });
            log.info("no TLS files to reload (the development PKI is not rotated in place)");
            return { result: "unchanged" };
          },
          close: cleanup.close,
        };
      },
    };
    return await assemble(service);
  } catch (err) {
    await cleanup.close();
    throw err;
  }
}

/** A refused call, audited as `authz.denied` through the outbox (delivered by the relay, never lost with the process). */
async function auditDenied(db: Database, relay: OutboxRelay | undefined, event: DeniedEvent, at: Date): Promise<void> {
  await writeAuditNow(db, newAuditEvent({ ...deniedAuditFields(event), now: at }));
  relay?.notify();
}

/**
 * Delivers this app's outbox to audit's Append as this app (its certificate, mTLS). Append is
 * idempotent by event id, so redelivery after a crash or a timeout is harmless.
 */
function auditRelay(name: ServiceName, db: Database, auditUrl: string, identity: () => ServerTls, logger: Logger): OutboxRelay {
  const audit = createClient(AuditService, { baseUrl: auditUrl, tls: identity });
  return createOutboxRelay({
    db,
    logger,
    name,
    deliver: async (events) => {
      await audit.append({ events });
    },
    isPermanentRefusal: isPermanentAuditRefusal,
  });
}

function verifierOf(tokens: AdminTokensConfig | AdminTokenVerifierLike): AdminTokenVerifierLike {
  return "verify" in tokens ? tokens : adminTokenVerifierFrom(tokens);
}
