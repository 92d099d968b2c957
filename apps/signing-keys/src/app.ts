/**
 * `startSigningKeys(config)`: the signing-keys service assembled from its parts — database,
 * KEK, key store, appliance CA, RPC server, outbox relay — used by main.ts and by the tests.
 */
import { SigningKeyService } from "@lcp/proto/signing/v1/signing_key_service_pb";
import { startService, type RunningService } from "@lcp/service";
import { createKeyring, loadOrCreateDevKek } from "@lcp/tokens";
import { SYSTEM_ACTOR } from "./audit.js";
import { createApplianceCa } from "./ca/appliance-ca.js";
import type { SigningKeysConfig } from "./config.js";
import { createSigningKeyHandlers } from "./handlers.js";
import { createActiveKeyCache } from "./keys/active-key-cache.js";
import { createJwksCache } from "./keys/jwks.js";
import { assertKeysReadable } from "./kek/rewrap.js";
import { createKeyStore } from "./keys/key-store.js";
import { ensureLockRows } from "./storage/change-lock.js";
import { entities, migrations } from "./storage/schema.js";

/** A running signing-keys service; `close()` stops the server (draining calls), the relay, and closes the database. */
export type SigningKeysApp = RunningService;

/** Starts the signing-keys service: migrates the database, creates the first keys and CA if needed, and listens. */
export async function startSigningKeys(config: SigningKeysConfig): Promise<SigningKeysApp> {
  const current = config.kek.kind === "configured" ? config.kek.key : await loadOrCreateDevKek(config.kek.dataDir);
  const kek = createKeyring(current, config.kekPrevious);
  const database = { databaseUrl: config.databaseUrl, dataDir: config.dataDir, schema: config.databaseSchema, entities, migrations };
  return startService({ name: "signing-keys", config, database, outbox: true }, async ({ db, log, now, listen, ready }) => {
    await ensureLockRows(db);
    // Before anything is signed or wrapped: a replica without the KEK of a stored key stops here.
    await assertKeysReadable(db, kek);
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

    const server = await listen({
      // No appliance ever calls this service: appliance CAs are not trusted on its listener.
      applianceCa: [],
      register: (router) => router.service(SigningKeyService, createSigningKeyHandlers({ keys, activeKey, jwks, ca, issuer: config.tokenIssuer, now })),
    });
    return ready(server);
  });
}
