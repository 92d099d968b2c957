/**
 * The OpenTelemetry SDK of a process (`@opentelemetry/sdk-node`), started by the first service that
 * has tracing settings and shut down — its spans flushed — when the last such service stops.
 *
 * The SDK is global to a process (one tracer provider, context manager and propagator), while a
 * process may run several services (tests start all apps in one process). So the SDK is shared and
 * counted rather than owned by a service: its resource names the first service (`service.name`,
 * overridden by `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES`), and each server span names its
 * own service in the `lcp.service` attribute (libs/rpc tracing.ts). In production, one service
 * per process, both say the same.
 *
 * Only traces are exported, over OTLP/HTTP (JSON) to the configured URL; the exporter reads the
 * other standard variables itself (`OTEL_EXPORTER_OTLP_HEADERS`, `…_TIMEOUT`, `…_CERTIFICATE` …),
 * the SDK the sampler (`OTEL_TRACES_SAMPLER`) and batching (`OTEL_BSP_*`). Metrics stay with
 * Prometheus and logs with stdout: the SDK's own OTLP metric and log pipelines are not started.
 * Context travels as W3C trace context only (`traceparent`), never as baggage, so what a caller
 * sends is not passed on to our other services beyond the trace ids.
 */
import { context, diag, DiagLogLevel, propagation, trace } from "@opentelemetry/api";
import type { NodeSDK } from "@opentelemetry/sdk-node";
import { setTracingActive, type TracingSettings } from "@lcp/rpc";
import type { Logger } from "pino";

interface SharedSdk {
  readonly sdk: NodeSDK;
  readonly url: string;
  users: number;
}

let shared: Promise<SharedSdk> | undefined;

/**
 * Starts the process's tracing SDK (or joins the running one) for service `name`; resolves to the
 * release to call when the service stops. The last release shuts the SDK down, exporting the spans
 * still batched, and unregisters it, so a later service can start it again. The SDK's modules are
 * loaded here, on first use: a process without tracing never loads them.
 */
export async function acquireTracing(name: string, settings: TracingSettings, log: Logger): Promise<() => Promise<void>> {
  shared ??= startSdk(name, settings, log);
  const starting = shared;
  let sdk: SharedSdk;
  try {
    sdk = await starting;
  } catch (err) {
    if (shared === starting) shared = undefined;
    throw err;
  }
  if (sdk.url !== settings.url) {
    log.warn({ url: settings.url, using: sdk.url }, "tracing: this process already exports to another URL; its spans go there");
  }
  sdk.users += 1;
  let released = false;
  return async () => {
    if (released) return;
    released = true;
    sdk.users -= 1;
    if (sdk.users > 0 || shared !== starting) return;
    shared = undefined;
    setTracingActive(false);
    try {
      await sdk.sdk.shutdown();
    } finally {
      trace.disable();
      context.disable();
      propagation.disable();
      diag.disable();
    }
  };
}

async function startSdk(name: string, settings: TracingSettings, log: Logger): Promise<SharedSdk> {
  const [{ NodeSDK }, { OTLPTraceExporter }, { W3CTraceContextPropagator }, { defaultResource, resourceFromAttributes }] = await Promise.all([
    import("@opentelemetry/sdk-node"),
    import("@opentelemetry/exporter-trace-otlp-http"),
    import("@opentelemetry/core"),
    import("@opentelemetry/resources"),
  ]);
  // Export failures are the SDK's to retry; they are worth a warning line, not a crash.
  const warn = (message: string, ...args: unknown[]) => log.warn({ otel: message, args: args.map(String) }, "tracing: export problem");
  diag.setLogger(
    { error: warn, warn, info: () => undefined, debug: () => undefined, verbose: () => undefined },
    { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true },
  );
  const sdk = new NodeSDK({
    resource: defaultResource().merge(resourceFromAttributes({ "service.name": name })),
    traceExporter: new OTLPTraceExporter({ url: settings.url }),
    textMapPropagator: new W3CTraceContextPropagator(),
    // Empty, not unset: unset, the SDK would start OTLP metric and log exporters of its own.
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: [],
  });
  sdk.start();
  setTracingActive(true);
  log.info({ url: settings.url }, "tracing: exporting spans over OTLP/HTTP");
  return { sdk, url: settings.url, users: 0 };
}
