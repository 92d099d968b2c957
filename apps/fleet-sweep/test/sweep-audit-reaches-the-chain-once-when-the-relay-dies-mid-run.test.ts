/**
 * A sweep stores each page's audit events as one outbox row per transition kind (a run), and the
 * outbox relay expands it when it ships. Against the real audit service over mTLS, on both
 * drivers: a relay that dies part-way through a run (after Append stored some of its events) leaves
 * the run undelivered; the next relay re-sends it whole with the same ids, and the audit chain
 * holds every transition's event exactly once, in licensing's outbox order, and verifies.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { startAudit, type AuditApp } from "@lcp/audit/app";
import { createOrm, createOutboxRelay, outboxEntities, type Database } from "@lcp/persistence";
import { AuditService, type AuditEvent } from "@lcp/proto/audit/v1/audit_service_pb";
import { createAdminClient, createClient } from "@lcp/rpc";
import { testDatabases, type TestDatabaseOptions } from "@lcp/testing/db";
import { ensureDevAdminIssuer } from "@lcp/tokens";
import { afterEach, describe, expect, it } from "vitest";
import { outboxEvents, seedFleet, startControlPlane, type ControlPlane } from "./real-licensing.js";

describe.each(testDatabases())("sweep audit through a dying relay ($name)", (tdb) => {
  let cp: ControlPlane | undefined;
  let audit: AuditApp | undefined;
  let auditDb: TestDatabaseOptions | undefined;
  let outbox: Database | undefined;
  let issuerDir: string | undefined;
  afterEach(async () => {
    await outbox?.close();
    await audit?.close();
    await auditDb?.cleanup();
    await cp?.close();
    if (issuerDir) await rm(issuerDir, { recursive: true, force: true });
    cp = audit = auditDb = outbox = issuerDir = undefined;
  });

  it("re-ships the run with the same ids: every transition once in the chain, in outbox order", async () => {
    cp = await startControlPlane(tdb);
    const at = cp.clock.now();
    await seedFleet(cp, { count: 1_200, at, staleEvery: 2, staleMs: 10 * 60_000 });
    // Two pages of 600 rows: 300 transitions each, one run row per page.
    const first = await cp.reconciler.reconcile({ sweepId: "s-1", now: timestampFromDate(at), pageSize: 600, countsOnly: true });
    await cp.reconciler.reconcile({ sweepId: "s-1", now: timestampFromDate(at), afterDeploymentId: first.nextAfterDeploymentId, pageSize: 600 });
    const written = await outboxEvents(cp);
    expect(written).toHaveLength(600);
    expect(Number((await cp.sql<{ n: number | string }>("select count(*) as n from outbox_event"))[0]!.n)).toBe(2);
    // Licensing stops: only the relays of this test touch its outbox now.
    await cp.stopLicensing();

    issuerDir = await mkdtemp(join(tmpdir(), "lcp-audit-issuer-"));
    const issuer = await ensureDevAdminIssuer(issuerDir);
    const auditCert = await cp.pki.service("audit");
    auditDb = tdb.options("audit");
    audit = await startAudit({
      app: "audit",
      host: "127.0.0.1",
      port: 0,
      trustDomain: cp.pki.trustDomain,
      tls: { certPem: auditCert.certPem, keyPem: auditCert.keyPem, caPem: cp.pki.ca.certPem, source: "files" },
      adminTokens: { issuer: issuer.issuer, audience: issuer.audience, jwks: issuer.jwks, rolesClaim: "roles", dev: true },
      dataDir: auditDb.dataDir,
      ...(auditDb.databaseUrl ? { databaseUrl: auditDb.databaseUrl } : {}),
      databaseSchema: auditDb.schema,
      logLevel: "silent",
      maxClockSkewMs: 60 * 60_000,
      shutdownGraceMs: 2_000,
    });
    const licensingCert = await cp.pki.service("licensing");
    const append = createClient(AuditService, {
      baseUrl: audit.url,
      tls: { caPem: cp.pki.ca.certPem, certPem: licensingCert.certPem, keyPem: licensingCert.keyPem },
      retries: 0,
    });
    outbox = await createOrm({
      app: "licensing",
      databaseUrl: cp.licensingDb.databaseUrl,
      dataDir: cp.licensingDb.dataDir,
      schema: cp.licensingDb.schema,
      entities: outboxEntities,
      migrations: { sqlite: [], postgresql: [] },
      migrate: false,
    });

    // The first relay dies after Append stored 250 events: mid-way through the first run.
    let calls = 0;
    const dying = createOutboxRelay({
      db: outbox,
      batchSize: 50,
      deliver: async (events: AuditEvent[]) => {
        if (++calls > 5) throw new Error("the relay died here");
        await append.append({ events });
      },
    });
    await expect(dying.flushNow()).rejects.toThrow("the relay died here");
    expect(await dying.stats()).toMatchObject({ pending: 600 });

    const next = createOutboxRelay({ db: outbox, batchSize: 50, deliver: async (events) => void (await append.append({ events })) });
    expect(await next.flushNow()).toBe(600);
    expect(await next.stats()).toEqual({ pending: 0, oldestPendingAgeMs: 0 });

    const admin = createAdminClient(AuditService, {
      baseUrl: audit.url,
      caPem: cp.pki.ca.certPem,
      token: () => issuer.mint({ subject: "auditor", roles: ["auditor"], ttlSeconds: 600 }),
      retries: 0,
    });
    expect(await admin.verifyChain({})).toMatchObject({ ok: true, checked: 600n, headSeq: 600n });
    const listed: AuditEvent[] = [];
    let pageToken = "";
    do {
      const page = await admin.listEvents({ pageSize: 500, pageToken });
      listed.push(...page.events);
      pageToken = page.nextPageToken;
    } while (pageToken);
    // Newest first: reversed, the chain is the outbox's order, each event once, as written.
    const chain = listed.reverse();
    expect(chain.map((e) => e.id)).toEqual(written.map((e) => e.id));
    expect(chain.every((e) => e.producer === "licensing" && e.action === "deployment.offline")).toBe(true);
    expect(chain.map((e) => e.resource!.id)).toEqual(written.map((e) => e.resource!.id));
  });
});
