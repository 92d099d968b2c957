/**
 * Prometheus metrics of one server: a registry of its own (several servers share a test process,
 * so the global default registry would mix them), the built-in per-call RPC metrics, the
 * process metrics, and helpers with which apps register theirs. Served at `GET /metrics` by
 * `createServer` (docs/design.md §10).
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
 * Latency buckets (seconds) for 1 ms to 10 s, roughly ×2.5 apart. Streams longer than 10 s
 * (heartbeat streams are held for hours) land in `+Inf`; their method label keeps them apart.
 */
export const RPC_DURATION_BUCKETS: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** A metric's configuration as prom-client takes it, minus `registers` (always this registry). */
export type MetricConfig<C> = Omit<C, "registers">;

/** Options of `createMetrics`. */
export interface MetricsOptions {
  /** The app name, added as the `app` label to every metric this registry serves. */
  readonly app: string;
  /**
   * Include the process metrics (CPU, memory, event loop lag, GC, handles…). Default true.
   * They are collected once per process and shared by every registry, so a process running
   * several servers starts one set of GC and event-loop observers, not one per server.
   */
  readonly processMetrics?: boolean;
}

/** What the server interceptor records for every call. */
export interface RpcCallMetrics {
  /** A call ended; `code` as in the log line (`"ok"`, `"permission_denied"`, …). */
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
  /** The registry served at `/metrics`; register prom-client metrics here directly if needed. */
  readonly registry: Registry;
  /** The built-in per-call metrics, recorded by the server interceptor. */
  readonly rpc: RpcCallMetrics;
  /** A counter: `counter("beats_total", "Heartbeats received", ["result"])`. */
  counter<L extends string = never>(name: string, help: string, labelNames?: readonly L[]): Counter<L>;
  counter<L extends string = never>(config: MetricConfig<CounterConfiguration<L>>): Counter<L>;
  /**
   * A gauge; with `collect` it is read at scrape time, e.g. outbox depth:
   * `gauge("outbox_depth", "Unsent outbox rows", [], async function () { this.set(await depth()) })`.
   */
  gauge<L extends string = never>(
    name: string,
    help: string,
    labelNames?: readonly L[],
    collect?: GaugeConfiguration<L>["collect"],
  ): Gauge<L>;
  gauge<L extends string = never>(config: MetricConfig<GaugeConfiguration<L>>): Gauge<L>;
  /** A histogram in seconds; default buckets `RPC_DURATION_BUCKETS`. */
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

/**
 * Answers a scrape with the text exposition (headers only for HEAD). A failing collect callback
 * (an outbox query, say) must not take the endpoint down silently: the scrape fails with 500 and
 * the cause is logged.
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
  const registry = new Registry();
  // A label rather than a name prefix: dashboards then share queries across the four apps.
  registry.setDefaultLabels({ app: options.app });
  if (options.processMetrics !== false) {
    for (const metric of processMetrics()) registry.registerMetric(metric);
  }

  type AnyMetric = Counter<string> | Gauge<string> | Histogram<string>;
  type Ctor = new (config: never) => AnyMetric;
  interface Named {
    readonly name: string;
    readonly labelNames?: readonly string[];
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
    const config =
      typeof nameOrConfig === "string"
        ? { name: nameOrConfig, help: help ?? "", labelNames: labelNames ?? [] }
        : nameOrConfig;
    return getOrCreate(Counter as Ctor, config, () => new Counter<L>({ ...config, registers: [registry] }));
  }

  function gauge<L extends string>(
    nameOrConfig: string | MetricConfig<GaugeConfiguration<L>>,
    help?: string,
    labelNames?: readonly L[],
    collect?: GaugeConfiguration<L>["collect"],
  ): Gauge<L> {
    // Only set keys: an explicit `undefined` would override prom-client's own defaults.
    const config =
      typeof nameOrConfig === "string"
        ? { name: nameOrConfig, help: help ?? "", labelNames: labelNames ?? [], ...(collect ? { collect } : {}) }
        : nameOrConfig;
    return getOrCreate(Gauge as Ctor, config, () => new Gauge<L>({ ...config, registers: [registry] }));
  }

  function histogram<L extends string>(
    nameOrConfig: string | MetricConfig<HistogramConfiguration<L>>,
    help?: string,
    labelNames?: readonly L[],
    buckets?: readonly number[],
  ): Histogram<L> {
    const config =
      typeof nameOrConfig === "string"
        ? {
            name: nameOrConfig,
            help: help ?? "",
            labelNames: labelNames ?? [],
            buckets: [...(buckets ?? RPC_DURATION_BUCKETS)],
          }
        : { buckets: [...RPC_DURATION_BUCKETS], ...nameOrConfig };
    return getOrCreate(Histogram as Ctor, config, () => new Histogram<L>({ ...config, registers: [registry] }));
  }

  const calls = counter("rpc_server_calls_total", "RPC calls ended, by method and status code.", [
    "service",
    "method",
    "code",
  ]);
  const duration = histogram(
    "rpc_server_call_duration_seconds",
    "RPC call duration from arrival to end (streams: until they close), by method.",
    ["service", "method"],
  );
  const streams = gauge("rpc_server_streams_active", "Streaming RPC calls open now, by method.", ["service", "method"]);

  return {
    registry,
    rpc: {
      callEnded(service, method, code, seconds) {
        calls.inc({ service, method, code });
        duration.observe({ service, method }, seconds);
      },
      streamOpened(service, method, delta) {
        streams.inc({ service, method }, delta);
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
