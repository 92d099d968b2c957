import * as http2 from "node:http2";
import * as https from "node:https";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health } from "@lcp/proto/grpc/health/v1/health_pb";
import { SigningKeyService } from "@lcp/proto/signing/v1/signing_key_service_pb";
import { createMetrics } from "@lcp/rpc";
import { createTestPki, type TestPki } from "@lcp/testing/pki";
import { startTestServer, type TestServer } from "@lcp/testing/server";
import { deferred, failure, newCalls, signingStub } from "./fixtures.js";

interface Scrape {
  readonly status: number;
  readonly contentType: string | undefined;
  readonly body: string;
}

/** A plain HTTPS/1.1 GET as a Prometheus scraper makes it: the CA, no client certificate. */
function scrape(url: string, caPem: string, path = "/metrics", method = "GET"): Promise<Scrape> {
  return new Promise((resolve, reject) => {
    const req = https.request(new URL(path, url), { method, ca: caPem, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, contentType: res.headers["content-type"], body }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

/** One sample of the text exposition: its name, labels and value. */
interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

function parse(body: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of body.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[k!] = v!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/** The value of the one sample with this name whose labels include `labels`; undefined if none. */
function value(body: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const hits = parse(body).filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  if (hits.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${hits.length} samples`);
  return hits[0]?.value;
}

const SIGNING = "signing.v1.SigningKeyService";

describe("Prometheus metrics at GET /metrics, per server, over real TLS", () => {
  let pki: TestPki;
  let t: TestServer;
  let other: TestServer;

  beforeAll(async () => {
    pki = await createTestPki();
    [t, other] = await Promise.all([
      startTestServer({ name: "signing-keys", pki, register: signingStub(newCalls()) }),
      startTestServer({ name: "audit", pki, register: signingStub(newCalls()) }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([t?.close(), other?.close()]);
  });

  it("counts calls by service, method and code, and times them, for a scraper without credentials", async () => {
    const anonymous = t.anonymousClient(SigningKeyService);
    await anonymous.getJwks({});
    await anonymous.getJwks({});
    const audit = await t.serviceClient(SigningKeyService, "audit");
    expect((await failure(audit.sign({ typ: "license+jwt" }))).rawMessage).toBeTruthy(); // PermissionDenied
    await failure(anonymous.sign({ typ: "license+jwt" })); // Unauthenticated
    const licensing = await t.serviceClient(SigningKeyService, "licensing");
    await licensing.sign({ typ: "license+jwt" });

    const res = await scrape(t.url, pki.ca.certPem);
    expect(res.status).toBe(200);
    expect(res.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    const app = "signing-keys";
    const calls = (method: string, code: string) =>
      value(res.body, "rpc_server_calls_total", { app, service: SIGNING, method, code });
    expect(calls("GetJwks", "ok")).toBe(2);
    expect(calls("Sign", "permission_denied")).toBe(1);
    expect(calls("Sign", "unauthenticated")).toBe(1);
    expect(calls("Sign", "ok")).toBe(1);
    expect(calls("GetJwks", "permission_denied")).toBeUndefined();

    const h = { app, service: SIGNING, method: "Sign" };
    expect(value(res.body, "rpc_server_call_duration_seconds_count", h)).toBe(3);
    expect(value(res.body, "rpc_server_call_duration_seconds_sum", h)).toBeGreaterThan(0);
    // Buckets from 1 ms to 10 s, cumulative, all calls under +Inf.
    expect(value(res.body, "rpc_server_call_duration_seconds_bucket", { ...h, le: "0.001" })).toBeGreaterThanOrEqual(0);
    expect(value(res.body, "rpc_server_call_duration_seconds_bucket", { ...h, le: "10" })).toBe(3);
    expect(value(res.body, "rpc_server_call_duration_seconds_bucket", { ...h, le: "+Inf" })).toBe(3);
  });

  it("serves the process metrics, labelled with the app", async () => {
    const { body } = await scrape(t.url, pki.ca.certPem);
    expect(value(body, "process_cpu_user_seconds_total", { app: "signing-keys" })).toBeGreaterThan(0);
    expect(value(body, "nodejs_heap_size_used_bytes", { app: "signing-keys" })).toBeGreaterThan(0);
    expect(value(body, "nodejs_eventloop_lag_seconds", { app: "signing-keys" })).toBeGreaterThanOrEqual(0);
  });

  it("holds a streaming call in rpc_server_streams_active while it is open, and counts it when it ends", async () => {
    const labels = { app: "signing-keys", service: "grpc.health.v1.Health", method: "Watch" };
    const abort = new AbortController();
    const opened = deferred();
    const watching = (async () => {
      for await (const _ of t.anonymousClient(Health).watch({ service: "" }, { signal: abort.signal })) opened.resolve();
    })().catch(() => undefined);
    await opened.promise;
    expect(value((await scrape(t.url, pki.ca.certPem)).body, "rpc_server_streams_active", labels)).toBe(1);

    abort.abort();
    await watching;
    // The server learns of the cancel a moment after the client gives up.
    let body = "";
    for (let i = 0; i < 50; i++) {
      body = (await scrape(t.url, pki.ca.certPem)).body;
      if (value(body, "rpc_server_streams_active", labels) === 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(value(body, "rpc_server_streams_active", labels)).toBe(0);
    expect(value(body, "rpc_server_calls_total", { ...labels, code: "canceled" })).toBe(1);
  });

  it("serves what the app registers: counters, histograms and gauges read at scrape time", async () => {
    const beats = t.server.metrics.counter("heartbeat_beats_total", "Heartbeats received.", ["result"]);
    beats.inc({ result: "accepted" }, 3);
    let depth = 7;
    t.server.metrics.gauge("outbox_depth", "Unsent outbox rows.", [], function () {
      this.set(depth);
    });
    t.server.metrics.gauge({
      name: "outbox_oldest_age_seconds",
      help: "Age of the oldest unsent outbox row.",
      async collect() {
        this.set(await Promise.resolve(12.5));
      },
    });
    const sweep = t.server.metrics.histogram("sweep_duration_seconds", "Sweep run duration.");
    sweep.observe(0.3);

    let { body } = await scrape(t.url, pki.ca.certPem);
    expect(value(body, "heartbeat_beats_total", { result: "accepted", app: "signing-keys" })).toBe(3);
    expect(value(body, "outbox_depth")).toBe(7);
    expect(value(body, "outbox_oldest_age_seconds")).toBe(12.5);
    expect(value(body, "sweep_duration_seconds_bucket", { le: "0.5" })).toBe(1);
    expect(value(body, "sweep_duration_seconds_bucket", { le: "0.25" })).toBe(0);
    depth = 2;
    ({ body } = await scrape(t.url, pki.ca.certPem));
    expect(value(body, "outbox_depth")).toBe(2);

    // Asking again for the same metric returns it; a clash of type or labels is a bug, and says so.
    expect(t.server.metrics.counter("heartbeat_beats_total", "Heartbeats received.", ["result"])).toBe(beats);
    expect(() => t.server.metrics.gauge("heartbeat_beats_total", "x", ["result"])).toThrow(/already registered/);
    expect(() => t.server.metrics.counter("heartbeat_beats_total", "x", ["other"])).toThrow(/already registered/);
  });

  it("keeps each server's registry to itself when several run in one process", async () => {
    await other.anonymousClient(SigningKeyService).getJwks({});
    other.server.metrics.gauge("outbox_depth", "Unsent outbox rows.").set(40);

    const mine = (await scrape(t.url, pki.ca.certPem)).body;
    const theirs = (await scrape(other.url, pki.ca.certPem)).body;
    expect(t.server.metrics.registry).not.toBe(other.server.metrics.registry);
    expect(value(theirs, "rpc_server_calls_total", { app: "audit", method: "GetJwks", code: "ok" })).toBe(1);
    expect(value(theirs, "rpc_server_calls_total", { method: "Sign" })).toBeUndefined();
    expect(value(theirs, "heartbeat_beats_total")).toBeUndefined();
    expect(value(theirs, "outbox_depth")).toBe(40);
    expect(value(mine, "outbox_depth")).not.toBe(40);
    expect(value(mine, "rpc_server_calls_total", { method: "GetJwks", code: "ok" })).toBe(2);
    expect(parse(mine).every((s) => s.labels["app"] === "signing-keys")).toBe(true);
    expect(parse(theirs).every((s) => s.labels["app"] === "audit")).toBe(true);
    // The shared process metrics appear in both, each under its own app label.
    expect(value(theirs, "process_cpu_user_seconds_total", { app: "audit" })).toBeGreaterThan(0);
  });

  it("answers HTTP/2 scrapes too, ignores a query string, and leaves other paths and methods alone", async () => {
    const session = http2.connect(t.url, { ca: pki.ca.certPem });
    try {
      const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = session.request({ ":method": "GET", ":path": "/metrics?name[]=x" });
        let status = 0;
        let body = "";
        req.setEncoding("utf8");
        req.on("response", (h) => (status = Number(h[":status"])));
        req.on("data", (c: string) => (body += c));
        req.on("end", () => resolve({ status, body }));
        req.on("error", reject);
        req.end();
      });
      expect(status).toBe(200);
      expect(value(body, "rpc_server_calls_total", { method: "GetJwks", code: "ok" })).toBe(2);
    } finally {
      session.close();
    }

    expect((await scrape(t.url, pki.ca.certPem, "/metrics", "HEAD")).status).toBe(200);
    expect((await scrape(t.url, pki.ca.certPem, "/metrics", "POST")).status).toBe(405);
    expect((await scrape(t.url, pki.ca.certPem, "/metrics/x")).status).toBe(404);
    expect((await scrape(t.url, pki.ca.certPem, "/nope")).status).toBe(404);
    expect((await scrape(t.url, pki.ca.certPem, "/")).status).toBe(404);
  });

  it("answers 500 and keeps serving when an app's collect callback throws", async () => {
    const s = await startTestServer({ name: "fleet-sweep", pki, register: signingStub(newCalls()) });
    try {
      let broken = true;
      s.server.metrics.gauge("outbox_depth", "Unsent outbox rows.", [], function () {
        if (broken) throw new Error("database is down");
        this.set(1);
      });
      expect((await scrape(s.url, pki.ca.certPem)).status).toBe(500);
      broken = false;
      expect(value((await scrape(s.url, pki.ca.certPem)).body, "outbox_depth")).toBe(1);
    } finally {
      await s.close();
    }
  });

  it("uses the metrics an app made before the server, so handlers built in register can hold them", async () => {
    const metrics = createMetrics({ app: "licensing", processMetrics: false });
    const pushed = metrics.counter("directives_pushed_total", "Directives pushed to boxes.", ["type"]);
    const s = await startTestServer({
      name: "licensing",
      pki,
      metrics,
      register: (router) => {
        signingStub(newCalls())(router);
        pushed.inc({ type: "LOCK" });
      },
    });
    try {
      expect(s.server.metrics).toBe(metrics);
      await s.anonymousClient(SigningKeyService).getJwks({});
      const { body } = await scrape(s.url, pki.ca.certPem);
      expect(value(body, "directives_pushed_total", { type: "LOCK", app: "licensing" })).toBe(1);
      expect(value(body, "rpc_server_calls_total", { method: "GetJwks", code: "ok" })).toBe(1);
      expect(value(body, "process_cpu_user_seconds_total")).toBeUndefined();
    } finally {
      await s.close();
    }
  });
});
