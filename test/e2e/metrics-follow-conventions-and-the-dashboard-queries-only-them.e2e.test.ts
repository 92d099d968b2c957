/**
 * Every app's `/metrics`, scraped from the real processes after a small workload (one box
 * heartbeating, then gone quiet; one sweep that moves it to GRACE), follows the Prometheus
 * conventions: counters end in `_total`, every metric but the standard `process_*`/`nodejs_*`
 * starts with the app's prefix, no label collides with a target label Prometheus or Kubernetes
 * adds, and histogram buckets are sane and fit what they measure (heartbeat streams live for
 * hours, sweeps of a million deployments take minutes). And every query of the Grafana dashboard
 * (`deploy/grafana/fleet-dashboard.json`) names a metric some app exports, with label matchers
 * on labels it has; the checks are also run on broken inputs to prove they fail.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Appliance } from "@lcp/appliance-sdk";
import { FleetSweepService, SweepStatus } from "@lcp/proto/fleet/v1/fleet_sweep_service_pb";
import { LicensingService } from "@lcp/proto/licensing/v1/licensing_service_pb";
import { DeploymentKind } from "@lcp/proto/licensing/v1/types_pb";
import { metricValue, parseExposition, scrapeMetrics, type MetricFamily } from "@lcp/testing/metrics";
import { APPS, REPO_ROOT, startCluster, type AppName, type Cluster } from "../support/cluster.js";
import { selectorsOf } from "../support/promql.js";
import { applianceFor, eventually, shrinkSettings } from "../support/story.js";

/** The labels Prometheus (`job`, `instance`), Kubernetes discovery and the Prometheus Operator put on a target, and the usual pod label. */
const TARGET_LABELS = ["app", "job", "instance", "namespace", "pod", "service", "container", "node", "endpoint"];
/** prom-client's process metrics keep the names every Node dashboard queries. */
const STANDARD = /^(process|nodejs)_/;
/** prom-client's gauges of open handles, requests and resources: standard names that end in _total. */
const STANDARD_TOTAL_GAUGES = new Set(["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"]);
/** Histograms whose range is part of what they are for: the top (or bottom) finite bucket they must reach. */
const RANGES: Record<string, { top?: number; bottom?: number }> = {
  licensing_rpc_server_stream_duration_seconds: { top: 86_400 },
  fleet_sweep_run_duration_seconds: { top: 600, bottom: 0.05 },
  licensing_rpc_server_call_duration_seconds: { bottom: 0.005 },
};

const prefixOf = (app: string) => `${app.replaceAll("-", "_")}_`;

/** What breaks the conventions in one app's exposition, one line each (empty when all is well). */
function conventionViolations(app: string, families: ReadonlyMap<string, MetricFamily>): string[] {
  const bad: string[] = [];
  for (const f of families.values()) {
    if (!STANDARD.test(f.name) && !f.name.startsWith(prefixOf(app))) bad.push(`${f.name}: not under ${prefixOf(app)}`);
    if (!/^[a-z][a-z0-9_]*$/.test(f.name)) bad.push(`${f.name}: not snake_case`);
    if (f.type === "counter" && !f.name.endsWith("_total")) bad.push(`${f.name}: a counter not ending in _total`);
    if (f.type !== "counter" && f.name.endsWith("_total") && !STANDARD_TOTAL_GAUGES.has(f.name)) bad.push(`${f.name}: a ${f.type} ending in _total`);
    if (f.help.trim() === "") bad.push(`${f.name}: no HELP`);
    for (const s of f.samples) {
      for (const label of Object.keys(s.labels)) if (TARGET_LABELS.includes(label)) bad.push(`${f.name}: label ${label} collides with a target label`);
    }
    if (f.type === "histogram") bad.push(...histogramViolations(f));
  }
  return [...new Set(bad)];
}

function histogramViolations(f: MetricFamily): string[] {
  const bad: string[] = [];
  const series = new Map<string, Array<{ le: number; n: number }>>();
  const counts = new Map<string, number>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    if (s.name === `${f.name}_count`) counts.set(key, s.value);
    if (s.name !== `${f.name}_bucket`) continue;
    if (le === undefined) bad.push(`${f.name}: a bucket without le`);
    else series.set(key, [...(series.get(key) ?? []), { le: le === "+Inf" ? Infinity : Number(le), n: s.value }]);
  }
  for (const [key, buckets] of series) {
    const les = buckets.map((b) => b.le);
    const finite = les.filter(Number.isFinite);
    if (les.at(-1) !== Infinity) bad.push(`${f.name}: last bucket is not +Inf`);
    if (les.some((le, i) => Number.isNaN(le) || le <= 0 || (i > 0 && le <= les[i - 1]!))) bad.push(`${f.name}: buckets not positive and increasing`);
    if (buckets.some((b, i) => i > 0 && b.n < buckets[i - 1]!.n)) bad.push(`${f.name}: bucket counts not cumulative`);
    if (buckets.at(-1)?.n !== counts.get(key)) bad.push(`${f.name}: +Inf bucket differs from _count`);
    if (f.name.endsWith("_seconds") && (finite.length < 5 || finite.at(-1)! / finite[0]! < 100)) {
      bad.push(`${f.name}: fewer than 5 buckets or less than two orders of magnitude`);
    }
    const range = RANGES[f.name];
    if (range?.top !== undefined && !(finite.at(-1)! >= range.top)) bad.push(`${f.name}: top bucket ${finite.at(-1)} below ${range.top}`);
    if (range?.bottom !== undefined && !(finite[0]! <= range.bottom)) bad.push(`${f.name}: bottom bucket ${finite[0]} above ${range.bottom}`);
  }
  return bad;
}

interface DashboardTarget {
  readonly refId?: unknown;
  readonly expr?: unknown;
  readonly datasource?: { readonly type?: unknown; readonly uid?: unknown };
}
interface DashboardPanel {
  readonly id?: unknown;
  readonly type?: unknown;
  readonly title?: unknown;
  readonly gridPos?: { readonly x: number; readonly y: number; readonly w: number; readonly h: number };
  readonly datasource?: { readonly type?: unknown; readonly uid?: unknown };
  readonly targets?: readonly DashboardTarget[];
}
interface Dashboard {
  readonly uid?: unknown;
  readonly title?: unknown;
  readonly schemaVersion?: unknown;
  readonly templating?: { readonly list?: ReadonlyArray<{ readonly type?: unknown; readonly name?: unknown; readonly query?: unknown }> };
  readonly panels?: readonly DashboardPanel[];
}

/** What is wrong with a dashboard as Grafana reads it (shape, ids, layout, datasource), one line each. */
function dashboardShapeViolations(d: Dashboard): string[] {
  const bad: string[] = [];
  if (typeof d.uid !== "string" || !/^[a-zA-Z0-9_-]{1,40}$/.test(d.uid)) bad.push("uid missing or not 1–40 of [a-zA-Z0-9_-]");
  if (typeof d.title !== "string" || d.title === "") bad.push("no title");
  if (typeof d.schemaVersion !== "number") bad.push("no schemaVersion");
  const ds = d.templating?.list?.find((v) => v.type === "datasource");
  if (!ds || ds.query !== "prometheus" || typeof ds.name !== "string") bad.push("no Prometheus datasource variable");
  const uid = `\${${String(ds?.name)}}`;
  const ids = new Set<unknown>();
  const cells = new Set<string>();
  for (const p of d.panels ?? []) {
    const name = String(p.title);
    if (typeof p.id !== "number" || ids.has(p.id)) bad.push(`${name}: id missing or repeated`);
    ids.add(p.id);
    if (!["timeseries", "stat", "gauge", "bargauge", "table"].includes(String(p.type))) bad.push(`${name}: unknown panel type ${String(p.type)}`);
    const g = p.gridPos;
    if (!g || g.x < 0 || g.w < 1 || g.h < 1 || g.x + g.w > 24) bad.push(`${name}: gridPos outside the 24 columns`);
    else
      for (let x = g.x; x < g.x + g.w; x++)
        for (let y = g.y; y < g.y + g.h; y++) {
          if (cells.has(`${x},${y}`)) bad.push(`${name}: overlaps another panel`);
          cells.add(`${x},${y}`);
        }
    if (p.datasource?.uid !== uid) bad.push(`${name}: panel datasource is not ${uid}`);
    const refs = new Set<unknown>();
    if (!p.targets?.length) bad.push(`${name}: no queries`);
    for (const t of p.targets ?? []) {
      if (typeof t.refId !== "string" || refs.has(t.refId)) bad.push(`${name}: refId missing or repeated`);
      refs.add(t.refId);
      if (typeof t.expr !== "string" || t.expr.trim() === "") bad.push(`${name}: a query without expr`);
      if (t.datasource?.uid !== uid) bad.push(`${name}: query datasource is not ${uid}`);
    }
  }
  return [...new Set(bad)];
}

/** Every query's selectors that name no exported metric, or match a label it does not have. */
function unknownSelectors(d: Dashboard, exported: ReadonlyMap<string, ReadonlySet<string>>): string[] {
  const bad: string[] = [];
  for (const p of d.panels ?? []) {
    for (const t of p.targets ?? []) {
      for (const s of selectorsOf(String(t.expr))) {
        const labels = exported.get(s.metric);
        if (!labels) bad.push(`${String(p.title)}: ${s.metric} is not exported`);
        else for (const l of s.labels) if (!labels.has(l)) bad.push(`${String(p.title)}: ${s.metric} has no label ${l}`);
      }
    }
  }
  return bad;
}

/**
 * Sample names with at least one sample (histograms as `_bucket`, `_sum` and `_count`, as queries
 * name them), each with the label names its samples carry.
 */
function exportedSamples(families: Iterable<MetricFamily>): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const f of families) {
    for (const s of f.samples) {
      const labels = out.get(s.name) ?? new Set<string>();
      for (const l of Object.keys(s.labels)) labels.add(l);
      out.set(s.name, labels);
    }
  }
  return out;
}

const DASHBOARD_PATH = join(REPO_ROOT, "deploy/grafana/fleet-dashboard.json");
const dashboard = () => JSON.parse(readFileSync(DASHBOARD_PATH, "utf8")) as Dashboard;

describe("the checks fail on what breaks the conventions", () => {
  it("reports a counter without _total, a foreign prefix, a target label and bad buckets", () => {
    const text = [
      "# HELP licensing_beats Beats.",
      "# TYPE licensing_beats counter",
      "licensing_beats 1",
      "# HELP outbox_depth Depth.",
      "# TYPE outbox_depth gauge",
      'outbox_depth{service="x"} 1',
      "# HELP licensing_took_seconds Took.",
      "# TYPE licensing_took_seconds histogram",
      'licensing_took_seconds_bucket{le="1"} 2',
      'licensing_took_seconds_bucket{le="0.5"} 1',
      'licensing_took_seconds_bucket{le="+Inf"} 3',
      "licensing_took_seconds_sum 2",
      "licensing_took_seconds_count 4",
      "# HELP licensing_rpc_server_stream_duration_seconds Streams.",
      "# TYPE licensing_rpc_server_stream_duration_seconds histogram",
      ...[0.001, 0.01, 0.1, 1, 10, "+Inf"].map((le) => `licensing_rpc_server_stream_duration_seconds_bucket{le="${le}"} 0`),
      "licensing_rpc_server_stream_duration_seconds_sum 0",
      "licensing_rpc_server_stream_duration_seconds_count 0",
    ].join("\n");
    expect(conventionViolations("licensing", parseExposition(text))).toEqual([
      "licensing_beats: a counter not ending in _total",
      "outbox_depth: not under licensing_",
      "outbox_depth: label service collides with a target label",
      "licensing_took_seconds: buckets not positive and increasing",
      "licensing_took_seconds: bucket counts not cumulative",
      "licensing_took_seconds: +Inf bucket differs from _count",
      "licensing_took_seconds: fewer than 5 buckets or less than two orders of magnitude",
      "licensing_rpc_server_stream_duration_seconds: top bucket 10 below 86400",
    ]);
  });

  it("reports a dashboard query naming an unknown metric or label, and a malformed dashboard", () => {
    const exported = new Map([["licensing_heartbeat_beats_total", new Set<string>()]]);
    const ds = { type: "prometheus", uid: "${datasource}" };
    const d: Dashboard = {
      uid: "x",
      title: "x",
      schemaVersion: 39,
      templating: { list: [{ type: "datasource", name: "datasource", query: "prometheus" }] },
      panels: [
        {
          id: 1,
          type: "timeseries",
          title: "beats",
          datasource: ds,
          gridPos: { x: 0, y: 0, w: 12, h: 8 },
          targets: [
            { refId: "A", datasource: ds, expr: "sum(rate(licensing_heartbeat_beats_total[$__rate_interval]))" },
            { refId: "B", datasource: ds, expr: 'sum(rate(licensing_heartbeat_beatz_total{grpc_method="x"}[5m]))' },
            { refId: "C", datasource: ds, expr: 'licensing_heartbeat_beats_total{pod="a"}' },
          ],
        },
      ],
    };
    expect(unknownSelectors(d, exported)).toEqual(["beats: licensing_heartbeat_beatz_total is not exported", "beats: licensing_heartbeat_beats_total has no label pod"]);
    expect(dashboardShapeViolations(d)).toEqual([]);
    const broken: Dashboard = {
      ...d,
      templating: { list: [] },
      panels: [...d.panels!, { ...d.panels![0]!, gridPos: { x: 20, y: 0, w: 8, h: 8 } }],
    };
    expect(dashboardShapeViolations(broken)).toEqual([
      "no Prometheus datasource variable",
      "beats: panel datasource is not ${undefined}",
      "beats: query datasource is not ${undefined}",
      "beats: id missing or repeated",
      "beats: gridPos outside the 24 columns",
    ]);
    // A query the extractor cannot read for certain fails rather than passes.
    expect(() => unknownSelectors({ panels: [{ title: "x", targets: [{ expr: 'sum({__name__=~"licensing_.*"})' }] }] }, exported)).toThrow(/__name__/);
  });
});

describe("every app's /metrics after a small workload", () => {
  let cluster: Cluster;
  let box: Appliance | undefined;
  const families = new Map<AppName, Map<string, MetricFamily>>();
  const scrape = async (app: AppName) => parseExposition(await scrapeMetrics(cluster.urls[app], cluster.caPem));
  const licensingMetric = async (name: string, labels: Record<string, string> = {}) =>
    metricValue(await scrapeMetrics(cluster.urls.licensing, cluster.caPem), name, labels);

  beforeAll(async () => {
    cluster = await startCluster();
    // Beats every second and a 2 s timeout, so the box beats and then goes GRACE within the test.
    await shrinkSettings(cluster);
    const support = cluster.adminClient(LicensingService, "support");
    const { license } = await support.provisionDeployment({ name: "metrics-ward", customer: "st-mary", kind: DeploymentKind.ON_PREM });
    box = await applianceFor(cluster, license!, "metrics-ward-mainboard");
    await box.activate();
    box.start();
    await eventually("beats counted", async () => ((await licensingMetric("licensing_heartbeat_beats_total")) >= 2 ? true : undefined));
    // The box goes quiet: its stream ends (timed in the stream lifetime histogram) and, past the
    // heartbeat timeout, a sweep moves it to GRACE.
    await box.stop();
    box = undefined;
    await eventually("the stream timed", async () =>
      (await licensingMetric("licensing_rpc_server_stream_duration_seconds_count", { grpc_method: "Heartbeat" })) >= 1 ? true : undefined,
    );
    const sweeps = cluster.adminClient(FleetSweepService, "support");
    await eventually("a sweep that moves the box to GRACE", async () => {
      const run = (await sweeps.sweep({})).sweep!;
      expect(SweepStatus[run.status]).toBe("SUCCEEDED");
      return run.transitions.length > 0 ? true : undefined;
    });
    for (const app of APPS) families.set(app, await scrape(app));
  }, 180_000);

  afterAll(async () => {
    await box?.stop().catch(() => undefined);
    await cluster?.stop();
  }, 60_000);

  it.each(APPS)("%s follows the naming, label and bucket conventions", (app) => {
    const own = families.get(app)!;
    expect(conventionViolations(app, own)).toEqual([]);
    // Its own metrics are there (not only the process ones): the shared RPC and readiness ones at least.
    expect(own.has(`${prefixOf(app)}rpc_server_calls_total`)).toBe(true);
    expect(own.get(`${prefixOf(app)}ready`)?.samples[0]?.value).toBe(1);
  });

  it("licensing counts the fleet by state and fleet-sweep times its runs", () => {
    const deployments = families.get("licensing")!.get("licensing_deployments")!;
    // Every state has its series, zero included; the one box is in one of them (which one depends
    // on when the cached count was taken: apps/licensing/test pins that with a clock).
    expect(deployments.samples.map((s) => s.labels["state"])).toEqual(["PENDING", "ACTIVE", "GRACE", "SUSPENDED", "LOCKED(OFFLINE)", "LOCKED(EXPIRED)", "LOCKED(REVOKED)"]);
    expect(deployments.samples.reduce((n, s) => n + s.value, 0)).toBe(1);
    expect(families.get("fleet-sweep")!.get("fleet_sweep_run_duration_seconds")!.samples.some((s) => s.name.endsWith("_count") && s.value >= 1)).toBe(true);
  });

  it("deploy/grafana/fleet-dashboard.json is a Grafana dashboard whose every query names a metric some app exports", () => {
    const d = dashboard();
    expect(dashboardShapeViolations(d)).toEqual([]);
    const titles = (d.panels ?? []).map((p) => String(p.title).toLowerCase()).join(" | ");
    for (const want of ["deployments by state", "beats/s", "streams held", "outbox depth", "oldest", "sweep duration", "error", "readiness"]) {
      expect(titles).toContain(want);
    }
    const exported = exportedSamples([...families.values()].flatMap((f) => [...f.values()]));
    expect(unknownSelectors(d, exported)).toEqual([]);
    // Every app appears on the dashboard.
    const exprs = (d.panels ?? []).flatMap((p) => (p.targets ?? []).map((t) => String(t.expr)));
    for (const app of APPS) expect(exprs.some((e) => e.includes(prefixOf(app)))).toBe(true);
  });
});
