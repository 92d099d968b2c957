/**
 * Prometheus metrics of one server: a registry of its own (several servers share a test process,
 * so the global default registry would mix them), the built-in per-call RPC metrics, the
 * process metrics, and helpers with which apps register theirs. Served at `GET /metrics` by
 * `createServer` (docs/design.md §10).
 *
 * Naming follows the Prometheus conventions, enforced here when a metric is made:
 * - every metric of an app carries the app's prefix (`licensing_`, `signing_keys_`, `audit_`,
 *   `fleet_sweep_`): the helpers take names relative to it, so the shared RPC, outbox and
 *   readiness metrics come out as `licensing_rpc_server_calls_total`, `audit_outbox_depth`…;
 * - counters end in `_total`;
 * - no label is one Prometheus or its Kubernetes discovery attaches to the target (`job`,
 *   `instance`, `namespace`, `pod`, `service`, `container`, `node`, `endpoint`, `app`): a
 *   collision is renamed `exported_<label>` at scrape time, which breaks every query using it;
 *   the replica and app are told apart by those target labels, so the registry adds none itself.
 * The process metrics keep prom-client's standard `process_*` and `nodejs_*` names: every Node
 * dashboard and alert (and the `process_*` of other languages' clients) is written against them,
 * and the target labels already say which app a series belongs to.
 */
import type { Logger } from "pino";
import {
  collectDefaultMetrics,
  Counter,
  Gauge,
  Histogram,
  Registry,
  type CounterConfiguration,
  type GaugeConfiguration,
  type HistogramConfiguration,
  type Metric,
} from "prom-client";

/** The path the metrics are served at, on the server's own TLS listener. */
export const METRICS_PATH = "/metrics";

/**
 * Latency buckets (seconds) of unary calls, 1 ms to 10 s, roughly ×2.5 apart. Streams are
 * measured apart, in `STREAM_DURATION_BUCKETS`.
 */
export const RPC_DURATION_BUCKETS: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/**
 * Lifetime buckets (seconds) of streaming calls, 1 s to a day: a box holds its heartbeat stream
 * for hours, and a stream that ends within seconds or minutes (a box that keeps reconnecting)
 * must stand apart from one that lived its day.
 */
export const STREAM_DURATION_BUCKETS: readonly number[] = [
  1, 10, 60, 300, 900, 1800, 3600, 7200, 14400, 28800, 43200, 86400,
];

/**
 * Labels a metric may not have: the ones Prometheus (`job`, `instance`), its Kubernetes service
 * discovery and the Prometheus Operator (`namespace`, `pod`, `service`, `container`, `node`,
 * `endpoint`) and the usual pod label (`app`) put on every series of a target.
 */
export const RESERVED_LABELS: readonly string[] = ["app", "job", "instance", "namespace", "pod", "service", "container", "node", "endpoint"];

/** The metric-name prefix of an app: `signing-keys` → `signing_keys_`. */
export function metricPrefix(app: string): string {
  if (!/^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/.test(app)) throw new Error(`metrics: app name ${JSON.stringify(app)} is not lower-case words joined by "-"`);
  return `${app.replaceAll("-", "_")}_`;
}

/** A metric's configuration as prom-client takes it, minus `registers` (always this registry). */
export type MetricConfig<C> = Omit<C, "registers">;

/** Options of `createMetrics`. */
export interface MetricsOptions {
  /** The app name (`signing-keys`); its `metricPrefix` starts the name of every metric made here. */
  readonly app: string;
  /**
   * Include the process metrics (CPU, memory, event loop lag, GC, handles…). Default true.
   * They are collected once per process and shared by every registry, so a process running
   * several servers starts one set of GC and event-loop observers, not one per server.
   */
  readonly processMetrics?: boolean;
  /** Where a failing scrape-time gauge is reported (once per failing spell); default silent. */
  readonly logger?: Pick<Logger, "warn" | "info">;
}

/** What the server interceptor records for every call. */
export interface RpcCallMetrics {
  /**
   * A call ended; `code` as in the log line (`"ok"`, `"permission_denied"`, …). A method that has
   * ever opened a stream (`streamOpened`) is a streaming one — a method is streaming or unary by
   * its definition — and its calls are measured in the stream lifetime histogram.
   */
  callEnded(service: string, method: string, code: string, seconds: number): void;
  /** A streaming call opened (+1) or closed (-1). */
  streamOpened(service: string, method: string, delta: 1 | -1): void;
}

/**
 * One server's metrics. Apps register their own through the helpers, which bind each metric to
 * this registry and return prom-client's own `Counter`, `Gauge` and `Histogram` objects.
 * Asking again for a name already registered with the same type and labels returns the same
 * metric (so a module built twice shares it); a clash of type or labels throws.
 */
export interface RpcMetrics {
  /**
   * The registry served at `/metrics`. Metrics registered here directly bypass the naming checks;
   * prefer the helpers.
   */
  readonly registry: Registry;
  /** The prefix of every metric name of this app (`licensing_`); the helpers add it. */
  readonly prefix: string;
  /** The built-in per-call metrics, recorded by the server interceptor. */
  readonly rpc: RpcCallMetrics;
  /**
   * A counter: `counter("heartbeat_beats_total", "Heartbeats received", ["result"])` serves
   * `licensing_heartbeat_beats_total` in licensing. Names are relative to `prefix` (one that
   * already starts with it is refused, as a doubled prefix); a counter's must end in `_total`;
   * labels in `RESERVED_LABELS` are refused.
   */
  counter<L extends string = never>(name: string, help: string, labelNames?: readonly L[]): Counter<L>;
  counter<L extends string = never>(config: MetricConfig<CounterConfiguration<L>>): Counter<L>;
  /**
   * A gauge (name relative to `prefix`); with `collect` it is read at scrape time, e.g. outbox depth:
   * `gauge("outbox_depth", "Unsent outbox rows", [], async function () { this.set(await depth()) })`.
   */
  gauge<L extends string = never>(
    name: string,
    help: string,
    labelNames?: readonly L[],
    collect?: GaugeConfiguration<L>["collect"],
  ): Gauge<L>;
  gauge<L extends string = never>(config: MetricConfig<GaugeConfiguration<L>>): Gauge<L>;
  /** A histogram in seconds (name relative to `prefix`); default buckets `RPC_DURATION_BUCKETS`. */
  histogram<L extends string = never>(
    name: string,
    help: string,
    labelNames?: readonly L[],
    buckets?: readonly number[],
  ): Histogram<L>;
  histogram<L extends string = never>(config: MetricConfig<HistogramConfiguration<L>>): Histogram<L>;
  /** The exposition's `Content-Type`: `text/plain; version=0.0.4; charset=utf-8`. */
  readonly contentType: string;
  /** The text exposition of every metric in the registry. */
  render(): Promise<string>;
}

/** Where a scrape is answered: an HTTP/1.1 or an HTTP/2 compatibility response. */
export interface MetricsResponse {
  writeHead(status: number, headers: Record<string, string>): unknown;
  end(): unknown;
  end(body: string): unknown;
}

/** How long a scrape-time gauge may take before the scrape goes on without it. */
export const COLLECT_TIMEOUT_MS = 2_000;

/**
 * Answers a scrape with the text exposition (headers only for HEAD). A scrape-time gauge that
 * fails or hangs (an outbox query while the database is down) does not fail the scrape: it keeps
 * its last value and `<prefix>metrics_collect_failures_total` counts it, so `<app>_ready 0` is
 * scraped exactly when it matters. Anything else failing answers 500, logged.
 */
export function sendMetrics(metrics: RpcMetrics, res: MetricsResponse, head: boolean, log: Pick<Logger, "error">): void {
  metrics.render().then(
    (body) => {
      res.writeHead(200, { "content-type": metrics.contentType, "cache-control": "no-store" });
      if (head) res.end();
      else res.end(body);
    },
    (err: unknown) => {
      log.error({ err }, "metrics collection failed");
      res.writeHead(500, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
      res.end("metrics collection failed\n");
    },
  );
}

/** Creates the metrics of one server; `createServer` makes one unless the app passes its own. */
export function createMetrics(options: MetricsOptions): RpcMetrics {
  const prefix = metricPrefix(options.app);
  const registry = new Registry();
  if (options.processMetrics !== false) {
    for (const metric of processMetrics()) registry.registerMetric(metric);
  }

  type AnyMetric = Counter<string> | Gauge<string> | Histogram<string>;
  type Ctor = new (config: never) => AnyMetric;
  interface Named {
    readonly name: string;
    readonly labelNames?: readonly string[];
  }
  // Checks a relative name and its labels, and returns the config under the full name.
  function named<C extends Named>(kind: "counter" | "gauge" | "histogram", config: C): C {
    const { name } = config;
    if (!/^[a-z][a-z0-9_]*$/.test(name)) throw new Error(`metric ${JSON.stringify(name)}: use lower-case snake_case`);
    if (name.startsWith(prefix)) throw new Error(`metric ${name}: names are relative to the app's prefix ${prefix}, which is added`);
    if (kind === "counter" && !name.endsWith("_total")) throw new Error(`metric ${name}: a counter's name ends in _total`);
    if (kind !== "counter" && name.endsWith("_total")) throw new Error(`metric ${name}: only counters end in _total`);
    for (const label of config.labelNames ?? []) {
      if (RESERVED_LABELS.includes(label)) throw new Error(`metric ${name}: label ${label} collides with a target label Prometheus adds`);
    }
    return { ...config, name: prefix + name };
  }
  function getOrCreate<M extends AnyMetric>(kind: Ctor, config: Named, make: () => M): M {
    const existing = registry.getSingleMetric(config.name);
    if (existing === undefined) return make();
    const have = (existing as unknown as Named).labelNames ?? [];
    const want = config.labelNames ?? [];
    if (!(existing instanceof kind) || have.length !== want.length || have.some((l, i) => l !== want[i])) {
      throw new Error(`metric ${config.name} is already registered with another type or labels`);
    }
    return existing as M;
  }

  function counter<L extends string>(
    nameOrConfig: string | MetricConfig<CounterConfiguration<L>>,
    help?: string,
    labelNames?: readonly L[],
  ): Counter<L> {
    const config = named(
      "counter",
      typeof nameOrConfig === "string" ? { name: nameOrConfig, help: help ?? "", labelNames: labelNames ?? [] } : nameOrConfig,
    );
    return getOrCreate(Counter as Ctor, config, () => new Counter<L>({ ...config, registers: [registry] }));
  }

  function gauge<L extends string>(
    nameOrConfig: string | MetricConfig<GaugeConfiguration<L>>,
    help?: string,
    labelNames?: readonly L[],
    collect?: GaugeConfiguration<L>["collect"],
  ): Gauge<L> {
    // Only set keys: an explicit `undefined` would override prom-client's own defaults.
    const config = named(
      "gauge",
      typeof nameOrConfig === "string"
        ? { name: nameOrConfig, help: help ?? "", labelNames: labelNames ?? [], ...(collect ? { collect } : {}) }
        : nameOrConfig,
    );
    const read = config.collect;
    if (read) {
      // Registered with the first scrape-time gauge, so the first failing scrape already shows it.
      collectFailures ??= counter("metrics_collect_failures_total", "Scrape-time gauge reads that failed or timed out (the gauge kept its last value), by metric.", ["metric"]);
      config.collect = guarded(config.name, read);
    }
    return getOrCreate(Gauge as Ctor, config, () => new Gauge<L>({ ...config, registers: [registry] }));
  }

  // A scrape-time read that throws or outlasts COLLECT_TIMEOUT_MS leaves the gauge at its last
  // value; the failure is counted, and logged when a failing spell starts and ends.
  let collectFailures: Counter<"metric"> | undefined;
  function guarded<L extends string>(name: string, read: NonNullable<GaugeConfiguration<L>["collect"]>): NonNullable<GaugeConfiguration<L>["collect"]> {
    let failing = false;
    return async function (this: Gauge<L>) {
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          read.call(this),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`no answer within ${COLLECT_TIMEOUT_MS} ms`)), COLLECT_TIMEOUT_MS);
          }),
        ]);
        if (failing) options.logger?.info({ metric: name }, "metric collection recovered");
        failing = false;
      } catch (err) {
        collectFailures?.inc({ metric: name });
        if (!failing) options.logger?.warn({ err, metric: name }, "metric collection failed; the gauge keeps its last value");
        failing = true;
      } finally {
        clearTimeout(timer);
      }
    };
  }

  function histogram<L extends string>(
    nameOrConfig: string | MetricConfig<HistogramConfiguration<L>>,
    help?: string,
    labelNames?: readonly L[],
    buckets?: readonly number[],
  ): Histogram<L> {
    const config = named(
      "histogram",
      typeof nameOrConfig === "string"
        ? { name: nameOrConfig, help: help ?? "", labelNames: labelNames ?? [], buckets: [...(buckets ?? RPC_DURATION_BUCKETS)] }
        : { buckets: [...RPC_DURATION_BUCKETS], ...nameOrConfig },
    );
    const b = config.buckets ?? [];
    if (b.length === 0 || b.some((v, i) => !(Number.isFinite(v) && v > 0) || (i > 0 && v <= b[i - 1]!))) {
      throw new Error(`metric ${config.name}: buckets must be positive, finite and increasing`);
    }
    return getOrCreate(Histogram as Ctor, config, () => new Histogram<L>({ ...config, registers: [registry] }));
  }

  // Label names as go-grpc-prometheus spells them: `service` would collide with the Kubernetes
  // target label, and the grpc_ names are what existing gRPC dashboards query.
  const calls = counter("rpc_server_calls_total", "RPC calls ended, by method and status code.", ["grpc_service", "grpc_method", "grpc_code"]);
  const duration = histogram(
    "rpc_server_call_duration_seconds",
    "Unary RPC call duration from arrival to end, by method.",
    ["grpc_service", "grpc_method"],
  );
  const lifetime = histogram(
    "rpc_server_stream_duration_seconds",
    "Streaming RPC call lifetime from arrival to end (heartbeat streams live for hours), by method.",
    ["grpc_service", "grpc_method"],
    STREAM_DURATION_BUCKETS,
  );
  const streams = gauge("rpc_server_streams_active", "Streaming RPC calls open now, by method.", ["grpc_service", "grpc_method"]);
  const streaming = new Set<string>();

  return {
    registry,
    prefix,
    rpc: {
      callEnded(service, method, code, seconds) {
        const labels = { grpc_service: service, grpc_method: method };
        calls.inc({ ...labels, grpc_code: code });
        (streaming.has(`${service}/${method}`) ? lifetime : duration).observe(labels, seconds);
      },
      streamOpened(service, method, delta) {
        streaming.add(`${service}/${method}`);
        streams.inc({ grpc_service: service, grpc_method: method }, delta);
      },
    },
    counter,
    gauge,
    histogram,
    contentType: registry.contentType,
    render: () => registry.metrics(),
  };
}

let shared: readonly Metric[] | undefined;

/** The process metrics, collected once per process (their observers are never released). */
function processMetrics(): readonly Metric[] {
  if (!shared) {
    const holder = new Registry();
    collectDefaultMetrics({ register: holder });
    // getMetricsAsArray returns the metric objects themselves, though typed as their snapshots.
    shared = holder.getMetricsAsArray() as unknown as Metric[];
  }
  return shared;
}
