/**
 * Licensing's readiness: while it waits for signing-keys' appliance trust bundle it is alive
 * (`/healthz` 200) but not ready (`/readyz` 503 naming the wait, no TLS listener, so no SERVING);
 * once it holds the bundle every service is SERVING; on PostgreSQL, losing the database (a cut
 * TCP proxy, the shared server untouched) turns every service NOT_SERVING until it returns.
 */
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "@lcp/proto/grpc/health/v1/health_pb";
import { createClient } from "@lcp/rpc";
import { startTestSigningKeys } from "@lcp/signing-keys/testing";
import { testDatabases } from "@lcp/testing/db";
import { createTestPki } from "@lcp/testing/pki";
import { createTcpProxy, type TcpProxy } from "@lcp/testing/tcp-proxy";
import { waitFor } from "@lcp/testing/wait";
import { ensureDevAdminIssuer } from "@lcp/tokens";
import { describe, expect, it } from "vitest";
import { startLicensing, type LicensingApp } from "../src/app.js";
import { TEST_ISSUER } from "./support.js";

const SERVICES = ["", "licensing.v1.LicensingService", "licensing.v1.ApplianceService", "licensing.v1.ReconcileService"];

/** A port free now (the admin listener must be known before startLicensing returns). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe.each(testDatabases())("licensing readiness ($name)", (tdb) => {
  it("is alive but not ready until it holds the trust bundle, then follows its database", async () => {
    const pki = await createTestPki();
    const skDb = tdb.options("signing-keys");
    const db = tdb.options("licensing");
    const dev = await ensureDevAdminIssuer(db.dataDir);
    const adminTokens = { issuer: dev.issuer, audience: dev.audience, jwks: dev.jwks, rolesClaim: "roles", dev: true };
    const signingKeys = await startTestSigningKeys({ pki, db: skDb, adminTokens, tokenIssuer: TEST_ISSUER });
    // signing-keys runs, but licensing cannot reach it yet.
    const toSigning = await createTcpProxy({ target: { host: "127.0.0.1", port: signingKeys.port }, startCut: true });
    let toDatabase: TcpProxy | undefined;
    if (db.databaseUrl) toDatabase = await createTcpProxy({ target: { host: "127.0.0.1", port: 5432 } });
    let licensing: LicensingApp | undefined;
    try {
      const own = await pki.service("licensing");
      const adminPort = await freePort();
      const starting = startLicensing({
        app: "licensing",
        host: "127.0.0.1",
        port: 0,
        adminPort,
        readinessIntervalMs: 500,
        dataDir: db.dataDir,
        databaseUrl: toDatabase && db.databaseUrl ? toDatabase.rewrite(db.databaseUrl) : db.databaseUrl,
        databaseSchema: db.schema,
        trustDomain: pki.trustDomain,
        tls: { certPem: own.certPem, keyPem: own.keyPem, caPem: pki.ca.certPem, source: "files" },
        adminTokens,
        logLevel: "silent",
        signingKeysUrl: `https://localhost:${toSigning.port}`,
        trustRetryMs: 100,
        tokenIssuer: TEST_ISSUER,
        replicaId: "test",
      });
      starting.catch(() => undefined);
      const admin = (path: string) => fetch(`http://127.0.0.1:${adminPort}${path}`);

      await waitFor(async () => (await admin("/healthz").catch(() => undefined))?.status === 200, "liveness while starting", 10_000);
      // Migrating first ("starting"), then waiting for signing-keys, and saying so.
      const waiting = "not ready: starting: waiting for the appliance trust bundle from signing-keys\n";
      await waitFor(async () => (await (await admin("/readyz")).text()) === waiting, "/readyz naming the wait", 10_000);
      expect((await admin("/readyz")).status).toBe(503);
      expect(await (await admin("/metrics")).text()).toMatch(/^licensing_ready 0$/m);

      await toSigning.restore();
      licensing = await starting;
      expect(licensing.adminPort).toBe(adminPort);
      const l = licensing;
      const health = createClient(Health, { baseUrl: l.url, tls: { caPem: pki.ca.certPem }, retries: 0 });
      const statuses = async () => Promise.all(SERVICES.map(async (service) => (await health.check({ service })).status));
      expect(await statuses()).toEqual(SERVICES.map(() => ServingStatus.SERVING));
      expect((await admin("/readyz")).status).toBe(200);
      expect(await (await admin("/metrics")).text()).toMatch(/^licensing_ready 1$/m);

      if (toDatabase) {
        const proxy = toDatabase;
        await proxy.cut();
        await waitFor(async () => (await statuses()).every((s) => s === ServingStatus.NOT_SERVING), "every service NOT_SERVING", 5_000);
        expect((await admin("/readyz")).status).toBe(503);
        await proxy.restore();
        await waitFor(async () => (await statuses()).every((s) => s === ServingStatus.SERVING), "every service SERVING again", 10_000);
      }
    } finally {
      await licensing?.close();
      await toSigning.close();
      await toDatabase?.close();
      await signingKeys.close();
      await db.cleanup();
      await skDb.cleanup();
    }
  }, 30_000);
});
