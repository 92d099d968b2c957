/**
 * `startLicensing(config)`: the licensing service assembled from its parts — database, settings,
 * the signing-keys gateway, the appliance trust bundle, the RPC server (LicensingService,
 * ApplianceService, ReconcileService), the outbox relay — used by main.ts and by the tests.
 */
import { ApplianceService } from "@lcp/proto/licensing/v1/appliance_service_pb";
import { LicensingService } from "@lcp/proto/licensing/v1/licensing_service_pb";
import { ReconcileService } from "@lcp/proto/licensing/v1/reconcile_service_pb";
import { SigningKeyService } from "@lcp/proto/signing/v1/signing_key_service_pb";
import { normalizeSerialNumber, splitPemCertificates } from "@lcp/pki";
import { createClient, type AppliancePrincipal, type ApplianceCheck } from "@lcp/rpc";
import { startService, type RunningService } from "@lcp/service";
import type { Logger } from "pino";
import { createApplianceService } from "./appliance-service/service.js";
import type { LicensingConfig } from "./config.js";
import type { LicensingDeps } from "./deps.js";
import { createRefusalAudit } from "./core/audit.js";
import { createLicensingService } from "./licensing-service/service.js";
import { registerFleetMetrics } from "./licensing-service/fleet-metrics.js";
import { createReconcileService } from "./reconcile/service.js";
import { ensureSettingsRow } from "./licensing-service/settings.js";
import { createHeartbeatModule } from "./heartbeat/index.js";
import { createSigningKeysGateway, DEFAULT_JWKS_MAX_AGE_MS, type SigningKeysGateway } from "./signing-keys.js";
import { isCertificateUsable } from "./storage/repository.js";
import { entities, migrations } from "./storage/schema.js";

/** A running licensing service; `close()` stops the trust refresh, the server (draining calls), the heartbeat module and the relay, and closes the database. */
export type LicensingApp = RunningService;

const DEFAULT_TRUST_REFRESH_MS = 5 * 60_000;
const DEFAULT_TRUST_RETRY_MS = 1_000;

/**
 * Fetches the appliance CA bundle from signing-keys, retrying until it answers: licensing cannot
 * authenticate a single box without it, and signing-keys may simply be starting alongside us.
 */
async function waitForTrustBundle(
  gateway: SigningKeysGateway,
  config: LicensingConfig,
  log: Logger,
  stopped: AbortSignal,
): Promise<string[]> {
  for (let attempt = 1; ; attempt++) {
    try {
      const bundle = await gateway.applianceTrustBundle();
      if (bundle.length > 0) {
        if (attempt > 1) log.info({ signingKeysUrl: config.signingKeysUrl }, "appliance trust bundle received");
        return bundle;
      }
      log.warn({ signingKeysUrl: config.signingKeysUrl }, "signing-keys returned an empty appliance trust bundle; retrying");
    } catch (err) {
      const retryMs = config.trustRetryMs ?? DEFAULT_TRUST_RETRY_MS;
      log.warn(
        { signingKeysUrl: config.signingKeysUrl, attempt, retryMs, err: (err as Error).message },
        `waiting for signing-keys at ${config.signingKeysUrl} to serve the appliance trust bundle (is it running, and does it trust this service's certificate?)`,
      );
    }
    if (stopped.aborted) throw new Error("licensing start aborted");
    await new Promise((resolve) => setTimeout(resolve, config.trustRetryMs ?? DEFAULT_TRUST_RETRY_MS));
  }
}

/** Starts the licensing service: migrates the database, waits for signing-keys' trust bundle, and listens. */
export async function startLicensing(config: LicensingConfig): Promise<LicensingApp> {
  const database = { databaseUrl: config.databaseUrl, dataDir: config.dataDir, schema: config.databaseSchema, entities, migrations };
  return startService({ name: "licensing", config, database, outbox: true }, async ({ db, log, now, metrics, identity, stopping, defer, startingBecause, listen, ready }) => {
    await ensureSettingsRow(db, now());
    // Licensing calls signing-keys as itself: its service certificate is its client identity.
    const signing = createSigningKeysGateway({
      client: createClient(SigningKeyService, { baseUrl: config.signingKeysUrl, tls: identity }),
      log,
      jwksMaxAgeMs: config.jwksMaxAgeMs,
    });
    // Heartbeat streams: the hub is the directive publisher, so every committed change
    // reaches a connected box on any replica.
    const heartbeat = await createHeartbeatModule({
      db,
      log,
      now,
      replicaId: config.replicaId,
      limits: config.heartbeatLimits,
      staleCheckMs: config.heartbeatStaleCheckMs,
    });
    defer(() => heartbeat.close());
    // Handlers' refusals, coalesced with the same window as the server's authz.denied events;
    // flushed at shutdown after the server stopped and before the database closes.
    const refusals = createRefusalAudit({ db, now, log, windowMs: config.deniedAuditWindowMs });
    defer(() => refusals.flush());
    const deps: LicensingDeps = {
      db,
      now,
      signer: signing,
      signing,
      publisher: config.directivePublisher ?? heartbeat.hub,
      log,
      faults: config.faults,
      tokenIssuer: config.tokenIssuer,
      trustDomain: config.trustDomain,
      refusals,
      offlineSigner: () => {
        const tls = identity();
        return { privateKeyPem: tls.keyPem, certificateChainPem: splitPemCertificates(tls.certPem) };
      },
    };

    // Not listening (so not SERVING) until then; the admin port's /readyz says what it waits for.
    startingBecause("waiting for the appliance trust bundle from signing-keys");
    let trust = await waitForTrustBundle(signing, config, log, stopping);
    // A revoked signing key stops verifying here within JWKS_MAX_AGE, and connected boxes are told.
    await heartbeat.startFleetSync(deps, config.jwksMaxAgeMs ?? DEFAULT_JWKS_MAX_AGE_MS);

    // Only serials licensing recorded at activation, and not revoked since (rebind, revoke), pass.
    const checkAppliance = async (principal: AppliancePrincipal): Promise<ApplianceCheck> => {
      const usable = await isCertificateUsable(db.em(), principal.deploymentId, normalizeSerialNumber(principal.serialNumber));
      return usable ? { ok: true } : { ok: false, reason: "certificate revoked or not issued by licensing" };
    };

    const heartbeatHandlers = heartbeat.handlers(deps);
    heartbeat.registerMetrics(metrics);
    registerFleetMetrics(metrics, deps, config.fleetMetricsMaxAgeMs);
    const server = await listen({
      applianceCa: trust,
      checkAppliance,
      // Boxes that kept a ticket resume TLS after a restart: no signature or chain check per box in
      // the reconnect storm (README "Heartbeat transport", kill -9).
      ...(config.sessionTicketSecret ? { sessionTickets: { secret: config.sessionTicketSecret } } : {}),
      // The fleet's gRPC Heartbeat streams skip the Connect stack (README "Heartbeat transport").
      rawStreams: heartbeatHandlers.rawStreams,
      register(router) {
        router.service(LicensingService, { ...createLicensingService(deps, { heartbeats: heartbeat.statuses }), ...heartbeatHandlers.licensing });
        router.service(ApplianceService, { ...createApplianceService(deps), ...heartbeatHandlers.appliance });
        router.service(ReconcileService, createReconcileService(deps));
      },
    });

    // A rotated appliance CA must be trusted before its first certificates reach us.
    const refresh = setInterval(() => {
      signing
        .applianceTrustBundle()
        .then((bundle) => {
          if (bundle.length > 0 && bundle.join("\n") !== trust.join("\n")) {
            trust = bundle;
            server.setApplianceTrust(bundle);
          }
        })
        .catch((err: unknown) => log.warn({ err: (err as Error).message }, "could not refresh the appliance trust bundle; keeping the current one"));
    }, config.trustRefreshMs ?? DEFAULT_TRUST_REFRESH_MS);
    refresh.unref();
    defer(() => clearInterval(refresh));

    return ready(server, { replica: config.replicaId, signingKeysUrl: config.signingKeysUrl, auditUrl: config.auditUrl ?? null });
  });
}
