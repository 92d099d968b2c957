import * as http2 from "node:http2";
import * as https from "node:https";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health } from "@lcp/proto/grpc/health/v1/health_pb";
import { SigningKeyService } from "@lcp/proto/signing/v1/signing_key_service_pb";
import { COLLECT_TIMEOUT_MS, createMetrics } from "@lcp/rpc";
import { parseExposition, type Sample } from "@lcp/testing/metrics";
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

/** Every sample of the exposition (parsed strictly: a malformed line fails the test). */
function parse(body: string): Sample[] {
  return [...parseExposition(body).values()].flatMap((f) => f.samples);
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
    const calls = (method: string, code: string) =>
      value(res.body, "signing_keys_rpc_server_calls_total", { grpc_service: SIGNING, grpc_method: method, grpc_code: code });
    expect(calls("GetJwks", "ok")).toBe(2);
    expect(calls("Sign", "permission_denied")).toBe(1);
    expect(calls("Sign", "unauthenticated")).toBe(1);
    expect(calls("Sign", "ok")).toBe(1);
    expect(calls("GetJwks", "permission_denied")).toBeUndefined();

    const h = { grpc_service: SIGNING, grpc_method: "Sign" };
    expect(value(res.body, "signing_keys_rpc_server_call_duration_seconds_count", h)).toBe(3);
    expect(value(res.body, "signing_keys_rpc_server_call_duration_seconds_sum", h)).toBeGreaterThan(0);
    // Buckets from 1 ms to 10 s, cumulative, all calls under +Inf.
    expect(value(res.body, "signing_keys_rpc_server_call_duration_seconds_bucket", { ...h, le: "0.001" })).toBeGreaterThanOrEqual(0);
    expect(value(res.body, "signing_keys_rpc_server_call_duration_seconds_bucket", { ...h, le: "10" })).toBe(3);
    expect(value(res.body, "signing_keys_rpc_server_call_duration_seconds_bucket", { ...h, le: "+Inf" })).toBe(3);
    // Unary calls are not streams: the stream lifetime histogram has none of them.
    expect(value(res.body, "signing_keys_rpc_server_stream_duration_seconds_count", h)).toBeUndefined();
  });

  it("serves the process metrics under their standard names, and no label of its own on any sample", async () => {
    const { body } = await scrape(t.url, pki.ca.certPem);
    expect(value(body, "process_cpu_user_seconds_total")).toBeGreaterThan(0);
    expect(value(body, "nodejs_heap_size_used_bytes")).toBeGreaterThan(0);
    expect(value(body, "nodejs_eventloop_lag_seconds")).toBeGreaterThanOrEqual(0);
    // Which app and replica a series is from is what Prometheus' target labels say.
    expect(parse(body).filter((s) => "app" in s.labels || "service" in s.labels)).toEqual([]);
  });

  it("holds a streaming call in rpc_server_streams_active while it is open, and times it as a stream when it ends", async () => {
    const labels = { grpc_service: "grpc.health.v1.Health", grpc_method: "Watch" };
    const abort = new AbortController();
    const opened = deferred();
    const watching = (async () => {
      for await (const _ of t.anonymousClient(Health).watch({ service: "" }, { signal: abort.signal })) opened.resolve();
    })().catch(() => undefined);
    await opened.promise;
    expect(value((await scrape(t.url, pki.ca.certPem)).body, "signing_keys_rpc_server_streams_active", labels)).toBe(1);

    abort.abort();
    await watching;
    // The server learns of the cancel a moment after the client gives up.
    let body = "";
    for (let i = 0; i < 50; i++) {
      body = (await scrape(t.url, pki.ca.certPem)).body;
      if (value(body, "signing_keys_rpc_server_streams_active", labels) === 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(value(body, "signing_keys_rpc_server_streams_active", labels)).toBe(0);
    expect(value(body, "signing_keys_rpc_server_calls_total", { ...labels, grpc_code: "canceled" })).toBe(1);
    // A stream's lifetime goes to the hour-scale histogram (buckets up to a day), not the unary one.
    expect(value(body, "signing_keys_rpc_server_stream_duration_seconds_count", labels)).toBe(1);
    expect(value(body, "signing_keys_rpc_server_stream_duration_seconds_bucket", { ...labels, le: "1" })).toBe(1);
    expect(value(body, "signing_keys_rpc_server_stream_duration_seconds_bucket", { ...labels, le: "86400" })).toBe(1);
    expect(value(body, "signing_keys_rpc_server_call_duration_seconds_count", labels)).toBeUndefined();
  });

  it("serves what the app registers under the app's prefix: counters, histograms and gauges read at scrape time", async () => {
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
    expect(value(body, "signing_keys_heartbeat_beats_total", { result: "accepted" })).toBe(3);
    expect(value(body, "signing_keys_outbox_depth")).toBe(7);
    expect(value(body, "signing_keys_outbox_oldest_age_seconds")).toBe(12.5);
    expect(value(body, "signing_keys_sweep_duration_seconds_bucket", { le: "0.5" })).toBe(1);
    expect(value(body, "signing_keys_sweep_duration_seconds_bucket", { le: "0.25" })).toBe(0);
    expect(value(body, "outbox_depth")).toBeUndefined();
    depth = 2;
    ({ body } = await scrape(t.url, pki.ca.certPem));
    expect(value(body, "signing_keys_outbox_depth")).toBe(2);

    // Asking again for the same metric returns it; a clash of type or labels is a bug, and says so.
    expect(t.server.metrics.counter("heartbeat_beats_total", "Heartbeats received.", ["result"])).toBe(beats);
    expect(() => t.server.metrics.histogram("outbox_depth", "x")).toThrow(/already registered/);
    expect(() => t.server.metrics.counter("heartbeat_beats_total", "x", ["other"])).toThrow(/already registered/);
  });

  it("refuses names and labels that break the conventions, naming the rule", () => {
    const m = createMetrics({ app: "signing-keys", processMetrics: false });
    expect(m.prefix).toBe("signing_keys_");
    expect(() => m.counter("beats", "x")).toThrow(/counter's name ends in _total/);
    expect(() => m.gauge("depth_total", "x")).toThrow(/only counters end in _total/);
    expect(() => m.counter("signing_keys_beats_total", "x")).toThrow(/relative to the app's prefix signing_keys_/);
    expect(() => m.gauge("Depth", "x")).toThrow(/snake_case/);
    expect(() => m.gauge("depth", "x", ["le\n"])).toThrow();
    for (const label of ["app", "job", "instance", "namespace", "pod", "service", "container", "node", "endpoint"]) {
      expect(() => m.counter("calls_total", "x", [label]), label).toThrow(new RegExp(`label ${label} collides`));
    }
    expect(() => m.histogram("took_seconds", "x", [], [])).toThrow(/buckets/);
    expect(() => m.histogram("took_seconds", "x", [], [1, 0.5])).toThrow(/increasing/);
    expect(() => m.histogram("took_seconds", "x", [], [0, 1])).toThrow(/positive/);
    expect(() => m.histogram("took_seconds", "x", [], [1, Number.POSITIVE_INFINITY])).toThrow(/finite/);
    for (const app of ["", "Licensing", "fleet_sweep", "a b", "-x", "x-", "licensing\n"]) {
      expect(() => createMetrics({ app, processMetrics: false }), JSON.stringify(app)).toThrow(/app name/);
    }
  });

  it("keeps each server's registry to itself when several run in one process", async () => {
    await other.anonymousClient(SigningKeyService).getJwks({});
    other.server.metrics.gauge("outbox_depth", "Unsent outbox rows.").set(40);

    const mine = (await scrape(t.url, pki.ca.certPem)).body;
    const theirs = (await scrape(other.url, pki.ca.certPem)).body;
    expect(t.server.metrics.registry).not.toBe(other.server.metrics.registry);
    expect(value(theirs, "audit_rpc_server_calls_total", { grpc_method: "GetJwks", grpc_code: "ok" })).toBe(1);
    expect(value(theirs, "audit_rpc_server_calls_total", { grpc_method: "Sign" })).toBeUndefined();
    expect(value(theirs, "audit_heartbeat_beats_total")).toBeUndefined();
    expect(value(theirs, "audit_outbox_depth")).toBe(40);
    expect(value(mine, "signing_keys_outbox_depth")).not.toBe(40);
    expect(value(mine, "signing_keys_rpc_server_calls_total", { grpc_method: "GetJwks", grpc_code: "ok" })).toBe(2);
    const standard = /^(process|nodejs)_/;
    expect(parse(mine).filter((s) => !standard.test(s.name) && !s.name.startsWith("signing_keys_"))).toEqual([]);
    expect(parse(theirs).filter((s) => !standard.test(s.name) && !s.name.startsWith("audit_"))).toEqual([]);
    // The shared process metrics appear in both, under their standard names.
    expect(value(theirs, "process_cpu_user_seconds_total")).toBeGreaterThan(0);
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
      expect(value(body, "signing_keys_rpc_server_calls_total", { grpc_method: "GetJwks", grpc_code: "ok" })).toBe(2);
    } finally {
      session.close();
    }

    expect((await scrape(t.url, pki.ca.certPem, "/metrics", "HEAD")).status).toBe(200);
    expect((await scrape(t.url, pki.ca.certPem, "/metrics", "POST")).status).toBe(405);
    expect((await scrape(t.url, pki.ca.certPem, "/metrics/x")).status).toBe(404);
    expect((await scrape(t.url, pki.ca.certPem, "/nope")).status).toBe(404);
    expect((await scrape(t.url, pki.ca.certPem, "/")).status).toBe(404);
  });

  it("still answers when a scrape-time gauge throws or hangs: the gauge keeps its last value and the failure is counted", async () => {
    const s = await startTestServer({ name: "fleet-sweep", pki, register: signingStub(newCalls()) });
    const failures = (body: string) => value(body, "fleet_sweep_metrics_collect_failures_total", { metric: "fleet_sweep_outbox_depth" });
    try {
      let mode: "ok" | "throw" | "hang" = "ok";
      let depth = 1;
      s.server.metrics.gauge("outbox_depth", "Unsent outbox rows.", [], async function () {
        if (mode === "throw") throw new Error("database is down");
        if (mode === "hang") await new Promise(() => undefined);
        this.set(depth);
      });
      expect(value((await scrape(s.url, pki.ca.certPem)).body, "fleet_sweep_outbox_depth")).toBe(1);
      mode = "throw";
      depth = 7;
      const broken = await scrape(s.url, pki.ca.certPem);
      expect(broken.status).toBe(200);
      expect(value(broken.body, "fleet_sweep_outbox_depth")).toBe(1);
      // The counter is rendered beside the gauges' reads, so a failure shows from the next scrape on.
      mode = "hang";
      const started = Date.now();
      const hung = await scrape(s.url, pki.ca.certPem);
      expect(hung.status).toBe(200);
      expect(Date.now() - started).toBeLessThan(COLLECT_TIMEOUT_MS + 2_000);
      expect(value(hung.body, "fleet_sweep_outbox_depth")).toBe(1);
      expect(failures(hung.body)).toBe(1);
      mode = "ok";
      const back = await scrape(s.url, pki.ca.certPem);
      expect(value(back.body, "fleet_sweep_outbox_depth")).toBe(7);
      expect(failures(back.body)).toBe(2);
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
      expect(value(body, "licensing_directives_pushed_total", { type: "LOCK" })).toBe(1);
      expect(value(body, "licensing_rpc_server_calls_total", { grpc_method: "GetJwks", grpc_code: "ok" })).toBe(1);
      expect(value(body, "process_cpu_user_seconds_total")).toBeUndefined();
    } finally {
      await s.close();
    }
  });
});
