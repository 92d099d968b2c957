/**
 * `startSigningKeys(config)`: the signing-keys service assembled from its parts — database,
 * KEK, key store, appliance CA, RPC server, outbox relay — used by main.ts and by the tests.
 */
import { SigningKeyService } from "@lcp/proto/signing/v1/signing_key_service_pb";
import { OutboxService } from "@lcp/proto/ops/v1/outbox_service_pb";
import { createOrm, isConnectionError, listQuarantinedEvents, newAuditEvent, registerOutboxMetrics, writeAuditNow } from "@lcp/persistence";
import { adminTokenVerifierFrom, createLogger, createOutboxAdminService, createServer, deniedAuditFields, type DeniedEvent } from "@lcp/rpc";
import { loadOrCreateDevKek } from "@lcp/tokens";
import { SYSTEM_ACTOR } from "./audit.js";
import { createApplianceCa } from "./ca/appliance-ca.js";
import type { SigningKeysConfig } from "./config.js";
import { createSigningKeyHandlers } from "./handlers.js";
import { createActiveKeyCache } from "./keys/active-key-cache.js";
import { createJwksCache } from "./keys/jwks.js";
import { createKeyStore } from "./keys/key-store.js";
import { startAuditRelay } from "./relay.js";
import { ensureLockRows } from "./storage/change-lock.js";
import { entities, migrations } from "./storage/schema.js";

/** A running signing-keys service. */
export interface SigningKeysApp {
  /** `https://localhost:<port>`. */
  url: string;
  port: number;
  /** Stops the server (draining calls), the relay, and closes the database. Idempotent. */
  close(): Promise<void>;
}

/** Starts the signing-keys service: migrates the database, creates the first keys and CA if needed, and listens. */
export async function startSigningKeys(config: SigningKeysConfig): Promise<SigningKeysApp> {
  const log = config.logger ?? createLogger("signing-keys", config.logLevel);
  const now = config.now ?? (() => new Date());
  const kek = config.kek.kind === "configured" ? config.kek.key : await loadOrCreateDevKek(config.kek.dataDir);

  const db = await createOrm({
    app: "signing-keys",
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    schema: config.databaseSchema,
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
    await ensureLockRows(db);
    const activeKey = createActiveKeyCache({
      source: { activeKid: () => keys.activeKid(), activeKeyMaterial: () => keys.activeKeyMaterial() },
      recheckMs: config.activeKeyRecheckMs,
    });
    const keys = createKeyStore({
      db,
      kek,
      now,
      onChange: () => {
        activeKey.invalidate();
        jwks.invalidate();
      },
    });
    const jwks = createJwksCache(() => keys.published(), config.activeKeyRecheckMs);
    const ca = createApplianceCa({ db, kek, trustDomain: config.trustDomain, now });

    // First start: the service must be able to sign and issue from its first request on.
    const initial = await keys.ensureInitialKeys({ actor: SYSTEM_ACTOR, reason: "first start" });
    if (initial) log.info({ active: initial.activated.kid, next: initial.next.kid }, "created the first signing keys");
    if (await ca.ensureCa({ actor: SYSTEM_ACTOR, reason: "first start" })) log.info("created the appliance CA");

    const onDenied = async (event: DeniedEvent) => {
      await writeAuditNow(db, newAuditEvent({ ...deniedAuditFields(event), now: now() }));
    };

    const server = await createServer({
      transientError: isConnectionError,
      name: "signing-keys",
      host: config.host,
      port: config.port,
      tls: config.tls,
      trustDomain: config.trustDomain,
      // No appliance ever calls this service: appliance CAs are not trusted on its listener.
      applianceCa: [],
      adminTokens: adminTokenVerifierFrom(config.adminTokens),
      onDenied,
      deniedAuditWindowMs: config.deniedAuditWindowMs,
      connectionLimits: config.connectionLimits,
      logger: log,
      register: (router) =>
        router
          .service(SigningKeyService, createSigningKeyHandlers({ keys, activeKey, jwks, ca, issuer: config.tokenIssuer, now }))
          .service(OutboxService, createOutboxAdminService({ list: (page) => listQuarantinedEvents(db, page) })),
    });
    cleanups.push(() => server.close());
    registerOutboxMetrics(server.metrics, db);

    if (config.auditUrl) {
      const relay = startAuditRelay({ db, auditUrl: config.auditUrl, tls: config.tls, logger: log });
      cleanups.push(() => relay.stop());
    }

    let closing: Promise<void> | undefined;
    return {
      url: server.url,
      port: server.port,
      close: () => (closing ??= closeAll()),
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
