/**
 * `ADMIN_PORT`: a plain-HTTP listener for kubelet and Prometheus. `/healthz` (liveness),
 * `/readyz` (readiness), `/metrics` (the app's registry, with `audit_ready`); nothing else, no
 * bodies, bounded headers, a slow sender cut off; closed with the app. Unset → no listener.
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { connect } from "node:net";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "@lcp/proto/grpc/health/v1/health_pb";
import { createClient } from "@lcp/rpc";
import { testDatabases, type TestDatabaseOptions } from "@lcp/testing/db";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { AuditApp } from "../src/app.js";
import { createAuditTestEnv, type AuditTestEnv } from "./support.js";

/** Sends `request` as raw bytes and resolves with everything the server sent before closing. */
function raw(port: number, request: string, timeoutMs = 8_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let text = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close within ${timeoutMs} ms; got ${JSON.stringify(text)}`));
    }, timeoutMs);
    socket.on("data", (chunk: Buffer) => (text += chunk.toString("latin1")));
    socket.on("error", () => undefined);
    socket.on("close", () => {
      clearTimeout(timer);
      resolve(text);
    });
    socket.write(request);
  });
}

/** The TCP ports this process listens on (Linux: its socket inodes in /proc/net/tcp{,6}, state LISTEN). */
function listeningPorts(): Set<number> {
  const inodes = new Set<string>();
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // The fd closed while we looked.
    }
  }
  const ports = new Set<number>();
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of readFileSync(file, "utf8").split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[3] === "0A" && inodes.has(cols[9]!)) ports.add(parseInt(cols[1]!.split(":")[1]!, 16));
    }
  }
  return ports;
}
const added = (before: Set<number>) => [...listeningPorts()].filter((p) => !before.has(p)).sort();

describe.each(testDatabases())("admin port ($name)", (tdb) => {
  let env: AuditTestEnv;
  let db: TestDatabaseOptions;
  let app: AuditApp | undefined;

  beforeAll(async () => {
    env = await createAuditTestEnv();
  });
  afterAll(() => env.close());
  afterEach(async () => {
    await app?.close();
    app = undefined;
    await db.cleanup();
  });

  it("serves /healthz, /readyz and /metrics over plain HTTP and refuses everything else", async () => {
    db = tdb.options("audit");
    app = await env.start(db, { adminPort: 0 });
    const base = `http://127.0.0.1:${app.adminPort}`;

    const healthz = await fetch(`${base}/healthz`);
    expect([healthz.status, await healthz.text()]).toEqual([200, "ok\n"]);
    const readyz = await fetch(`${base}/readyz?verbose`);
    expect([readyz.status, await readyz.text()]).toEqual([200, "ready\n"]);
    expect((await fetch(`${base}/readyz`, { method: "HEAD" })).status).toBe(200);

    // The registry the TLS listener serves: the ready gauge, call metrics and process metrics.
    const health = createClient(Health, { baseUrl: app.url, tls: { caPem: env.pki.ca.certPem }, retries: 0 });
    expect((await health.check({ service: "" })).status).toBe(ServingStatus.SERVING);
    const metrics = await fetch(`${base}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await metrics.text();
    expect(text).toMatch(/^audit_ready 1$/m);
    expect(text).toMatch(/^audit_rpc_server_calls_total\{grpc_service="grpc\.health\.v1\.Health",grpc_method="Check",grpc_code="ok"\} 1$/m);
    expect(text).toContain("process_cpu_user_seconds_total");

    for (const path of ["/", "/metricsx", "/healthz/", "/grpc.health.v1.Health/Check", "/audit.v1.AuditService/ListEvents", "//healthz", "/HEALTHZ", "/healthz%00"]) {
      expect((await fetch(`${base}${path}`)).status, path).toBe(404);
    }
    for (const method of ["POST", "PUT", "DELETE", "OPTIONS"]) {
      const res = await fetch(`${base}/healthz`, { method, ...(method === "POST" ? { body: "x" } : {}) });
      expect(res.status, method).toBe(405);
      expect(res.headers.get("allow")).toBe("GET, HEAD");
    }
    // A GET with a body, chunked or not, is refused and not read.
    expect(await raw(app.adminPort!, "GET /readyz HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello")).toMatch(/^HTTP\/1\.1 413 /);
    expect(await raw(app.adminPort!, "GET /metrics HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")).toMatch(/^HTTP\/1\.1 413 /);
    // Headers are bounded; a malformed request gets a bare 400.
    expect(await raw(app.adminPort!, `GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: ${"a".repeat(8_192)}\r\n\r\n`)).toMatch(/^HTTP\/1\.1 431 /);
    expect(await raw(app.adminPort!, "BREW /healthz HTCPCP/1.0\r\n\r\n")).toMatch(/^HTTP\/1\.1 400 /);
    // Paths are compared as sent, never resolved.
    expect(await raw(app.adminPort!, "GET /x/../healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")).toMatch(/^HTTP\/1\.1 404 /);
  });

  it("drops a client that never finishes its headers, and is closed with the app", async () => {
    db = tdb.options("audit");
    app = await env.start(db, { adminPort: 0 });
    const port = app.adminPort!;
    const started = Date.now();
    // Slowloris: a request line and never the blank line.
    expect(await raw(port, "GET /healthz HTTP/1.1\r\nhost: x\r\n", 9_000)).toMatch(/^HTTP\/1\.1 408 /);
    expect(Date.now() - started).toBeLessThan(8_000);

    await app.close();
    app = undefined;
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
  }, 15_000);

  it("opens no listener when ADMIN_PORT is unset", async () => {
    db = tdb.options("audit");
    const before = listeningPorts();
    app = await env.start(db);
    expect(app.adminPort).toBeUndefined();
    // The TLS listener only.
    expect(added(before)).toEqual([app.port]);
    await app.close();
    app = undefined;
    await db.cleanup();
    db = tdb.options("audit");
    app = await env.start(db, { adminPort: 0 });
    expect(added(before)).toEqual([app.port, app.adminPort!].sort());
  });
});
