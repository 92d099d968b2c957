/**
 * Test support for the audit app: starts the real app (startAudit) on port 0 over mTLS with the
 * test PKI and a dev admin issuer, and hands out clients for each kind of caller.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, type JsonObject } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Client } from "@connectrpc/connect";
import { ActorKind, AuditEventSchema, AuditService, Outcome, type AuditEvent } from "@lcp/proto/audit/v1/audit_service_pb";
import { createAdminClient, createClient } from "@lcp/rpc";
import { createTestPki, type TestPki } from "@lcp/testing/pki";
import type { TestDatabase, TestDatabaseOptions } from "@lcp/testing/db";
import { ensureDevAdminIssuer, type DevAdminIssuer } from "@lcp/tokens";
import pino from "pino";
import { afterEach, beforeEach } from "vitest";
import { v7 as uuidv7 } from "uuid";
import { startAudit, type AuditApp } from "../src/app.js";
import { DEFAULT_MAX_CLOCK_SKEW_MS, type AuditConfig } from "../src/config.js";

/** Shared per test file: the PKI and the dev admin issuer every audit instance trusts. */
export interface AuditTestEnv {
  readonly pki: TestPki;
  readonly issuer: DevAdminIssuer;
  /** Starts an audit app on the given database (start several on one to play replicas). */
  start(db: TestDatabaseOptions, overrides?: Partial<AuditConfig>): Promise<AuditApp>;
  /** A client with the mTLS certificate of `service` (the producer of what it appends). */
  serviceClient(app: AuditApp, service: string): Promise<Client<typeof AuditService>>;
  /** A client with an admin bearer token for `roles`. */
  adminClient(app: AuditApp, roles: readonly string[], subject?: string): Client<typeof AuditService>;
  /** Removes the issuer's folder. */
  close(): Promise<void>;
}

/** Creates the shared test environment (call in beforeAll). */
export async function createAuditTestEnv(): Promise<AuditTestEnv> {
  const pki = await createTestPki();
  const dir = await mkdtemp(join(tmpdir(), "lcp-audit-issuer-"));
  const issuer = await ensureDevAdminIssuer(dir);
  const serverCert = await pki.service("audit");
  return {
    pki,
    issuer,
    start: (db, overrides = {}) =>
      startAudit({
        app: "audit",
        host: "127.0.0.1",
        port: 0,
        trustDomain: pki.trustDomain,
        tls: { certPem: serverCert.certPem, keyPem: serverCert.keyPem, caPem: pki.ca.certPem, source: "files" },
        adminTokens: { issuer: issuer.issuer, audience: issuer.audience, jwks: issuer.jwks, rolesClaim: "roles", dev: true },
        dataDir: db.dataDir,
        ...(db.databaseUrl ? { databaseUrl: db.databaseUrl } : {}),
        databaseSchema: db.schema,
        logLevel: "silent",
        maxClockSkewMs: DEFAULT_MAX_CLOCK_SKEW_MS,
        logger: pino({ level: process.env.LOG_LEVEL ?? "silent" }),
        shutdownGraceMs: 2_000,
        ...overrides,
      }),
    async serviceClient(app, service) {
      const cert = await pki.service(service);
      return createClient(AuditService, { baseUrl: app.url, tls: { caPem: pki.ca.certPem, certPem: cert.certPem, keyPem: cert.keyPem }, retries: 0 });
    },
    adminClient: (app, roles, subject = "test-admin") =>
      createAdminClient(AuditService, {
        baseUrl: app.url,
        caPem: pki.ca.certPem,
        token: () => issuer.mint({ subject, roles, ttlSeconds: 600 }),
        retries: 0,
      }),
    close: () => rm(dir, { recursive: true, force: true }),
  };
}

/** Input of {@link auditEvent}: anything not given gets a plausible default. */
export interface TestEventInput {
  id?: string;
  occurredAt?: Date | null;
  actor?: { kind?: ActorKind; id?: string; roles?: string[] } | null;
  action?: string;
  resource?: { type: string; id: string };
  outcome?: Outcome;
  requestId?: string;
  details?: JsonObject;
}

/** An event as a producer sends it (fresh UUIDv7, now, an admin actor, success). */
export function auditEvent(input: TestEventInput = {}): AuditEvent {
  const at = input.occurredAt === null ? undefined : (input.occurredAt ?? new Date());
  return create(AuditEventSchema, {
    id: input.id ?? uuidv7(),
    ...(at ? { occurredAt: timestampFromMs(at.getTime()) } : {}),
    ...(input.actor === null
      ? {}
      : { actor: { kind: input.actor?.kind ?? ActorKind.ADMIN, id: input.actor?.id ?? "alice", roles: input.actor?.roles ?? ["support"] } }),
    action: input.action ?? "license.issue",
    resource: input.resource ?? { type: "license", id: "lic-1" },
    outcome: input.outcome ?? Outcome.SUCCESS,
    requestId: input.requestId ?? "req-1",
    ...(input.details ? { details: input.details } : {}),
  });
}

/** What {@link freshAuditApp} hands each test: its database and the audit app on it. */
export interface FreshAuditApp {
  readonly app: AuditApp;
  readonly db: TestDatabaseOptions;
}

/**
 * Call inside a `describe`: every test gets a fresh database of `tdb` and an audit app on it
 * (read them from the returned object once the test runs), closed and dropped after the test.
 * `env` is a getter because the shared environment is made in beforeAll.
 */
export function freshAuditApp(env: () => AuditTestEnv, tdb: TestDatabase): FreshAuditApp {
  const current = {} as { app: AuditApp; db: TestDatabaseOptions };
  beforeEach(async () => {
    current.db = tdb.options("audit");
    current.app = await env().start(current.db);
  });
  afterEach(async () => {
    await current.app.close();
    await current.db.cleanup();
  });
  return current;
}
