/**
 * Readiness follows the database: while it does not answer, `grpc.health.v1` says NOT_SERVING
 * for `""` and for AuditService, `/readyz` says 503 and why, `audit_ready` is 0; when it
 * answers again everything flips back. PostgreSQL is cut through a TCP proxy in front of the
 * shared server (never stopped); SQLite cannot go away, so there it stays SERVING.
 */
import { Writable } from "node:stream";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "@lcp/proto/grpc/health/v1/health_pb";
import { createClient } from "@lcp/rpc";
import { testDatabases, type TestDatabaseOptions } from "@lcp/testing/db";
import { createTcpProxy, type TcpProxy } from "@lcp/testing/tcp-proxy";
import { waitFor } from "@lcp/testing/wait";
import pino from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { AuditApp } from "../src/app.js";
import { createAuditTestEnv, type AuditTestEnv } from "./support.js";

const AUDIT_SERVICE = "audit.v1.AuditService";

describe.each(testDatabases())("health follows the database ($name)", (tdb) => {
  let env: AuditTestEnv;
  let db: TestDatabaseOptions;
  let app: AuditApp | undefined;
  let proxy: TcpProxy | undefined;
  const lines: { level: number; msg: string }[] = [];
  const logger = pino(
    { level: "info" },
    new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString().split("\n").filter(Boolean)) lines.push(JSON.parse(line) as { level: number; msg: string });
        done();
      },
    }),
  );

  beforeAll(async () => {
    env = await createAuditTestEnv();
  });
  afterAll(() => env.close());
  afterEach(async () => {
    await app?.close();
    await proxy?.close();
    await db.cleanup();
    lines.length = 0;
  });

  const statuses = async (a: AuditApp) => {
    const health = createClient(Health, { baseUrl: a.url, tls: { caPem: env.pki.ca.certPem }, retries: 0 });
    const overall = (await health.check({ service: "" })).status;
    const audit = (await health.check({ service: AUDIT_SERVICE })).status;
    return [overall, audit];
  };
  const readyz = async (a: AuditApp) => {
    const res = await fetch(`http://127.0.0.1:${a.adminPort}/readyz`);
    return { status: res.status, text: await res.text() };
  };
  const readyGauge = async (a: AuditApp) => {
    const text = await (await fetch(`http://127.0.0.1:${a.adminPort}/metrics`)).text();
    return /^audit_ready (\d)$/m.exec(text)?.[1];
  };

  it("reports NOT_SERVING within 5 s of losing the database and SERVING again when it returns", async () => {
    db = tdb.options("audit");
    if (tdb.name === "postgresql") {
      proxy = await createTcpProxy({ target: { host: "127.0.0.1", port: 5432 } });
    }
    const databaseUrl = proxy && db.databaseUrl ? proxy.rewrite(db.databaseUrl) : db.databaseUrl;
    app = await env.start({ ...db, ...(databaseUrl ? { databaseUrl } : {}) }, { readinessIntervalMs: 500, adminPort: 0, logger });
    const a = app;
    expect(await statuses(a)).toEqual([ServingStatus.SERVING, ServingStatus.SERVING]);
    expect(await readyz(a)).toEqual({ status: 200, text: "ready\n" });
    expect(await readyGauge(a)).toBe("1");

    if (!proxy) {
      // SQLite is a file of this process: several probe rounds later it is still SERVING.
      await new Promise((resolve) => setTimeout(resolve, 1_600));
      expect(await statuses(a)).toEqual([ServingStatus.SERVING, ServingStatus.SERVING]);
      expect(lines.filter((l) => /unreachable|reachable again/.test(l.msg))).toEqual([]);
      return;
    }

    const cutAt = Date.now();
    await proxy.cut();
    await waitFor(async () => (await statuses(a))[0] === ServingStatus.NOT_SERVING, "NOT_SERVING", 5_000);
    expect(Date.now() - cutAt).toBeLessThan(5_000);
    expect(await statuses(a)).toEqual([ServingStatus.NOT_SERVING, ServingStatus.NOT_SERVING]);
    const down = await readyz(a);
    expect(down.status).toBe(503);
    expect(down.text).toMatch(/^not ready: database (unreachable|probe)/);
    expect(down.text.trim().split("\n")).toHaveLength(1);
    expect(await readyGauge(a)).toBe("0");
    // Liveness is not readiness: the process still answers.
    expect((await fetch(`http://127.0.0.1:${a.adminPort}/healthz`)).status).toBe(200);

    await proxy.restore();
    await waitFor(async () => (await statuses(a))[0] === ServingStatus.SERVING, "SERVING again", 10_000);
    expect(await statuses(a)).toEqual([ServingStatus.SERVING, ServingStatus.SERVING]);
    expect((await readyz(a)).status).toBe(200);
    expect(await readyGauge(a)).toBe("1");

    // One line per change: a warning going down, an info line coming back.
    const changes = lines.filter((l) => /unreachable; health|reachable again/.test(l.msg));
    expect(changes.map((l) => [l.level, l.msg])).toEqual([
      [40, "database unreachable; health NOT_SERVING"],
      [30, "database reachable again; health SERVING"],
    ]);
  });
});
