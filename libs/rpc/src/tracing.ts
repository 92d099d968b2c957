/**
 * OpenTelemetry spans for RPCs, on the API only (`@opentelemetry/api`): the SDK that records and
 * exports them is started by `@lcp/service` (tracing-sdk.ts) when `OTEL_EXPORTER_OTLP_ENDPOINT` or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set. Until then {@link tracingActive} is false and every
 * helper here returns at once, so an untraced process pays one boolean test per call.
 *
 * What is traced (docs/design.md "Tracing"):
 * - every call a server answers, Connect and raw heartbeat alike: a SERVER span named
 *   `pkg.Service/Method`, continuing the caller's W3C `traceparent` (validated and bounded by the
 *   W3C propagator: a malformed one starts a new trace, a tracestate past 512 characters or 32
 *   members is dropped), with the `rpc.*` attributes and the gRPC status;
 * - every call a client makes: a CLIENT span, and `traceparent` sent along;
 * - the log lines written while a span is current carry `trace_id` and `span_id` (logger.ts).
 *
 * One process may hold several servers (tests start all apps in one process) but the SDK, its
 * exporter and its resource are one per process; each server span therefore also names its
 * service in {@link SERVICE_ATTRIBUTE}, and the resource's `service.name` is the process's first
 * service unless `OTEL_SERVICE_NAME` says otherwise.
 */
import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Context,
  type Link,
  type Span,
  type SpanContext,
  type TextMapGetter,
} from "@opentelemetry/api";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

/** The span attribute naming the app whose server (or relay) made the span. */
export const SERVICE_ATTRIBUTE = "lcp.service";

/** The instrumentation scope of every span made here. */
const SCOPE = "@lcp/rpc";

let active = false;

/** Whether a tracer provider was started in this process (set by `@lcp/service`, never by apps). */
export function tracingActive(): boolean {
  return active;
}

/** Marks tracing on or off for the process; `@lcp/service` calls it around the SDK's life. */
export function setTracingActive(on: boolean): void {
  active = on;
}

/** The tracer every span of this system is made with. */
export function tracer() {
  return trace.getTracer(SCOPE);
}

const headersGetter: TextMapGetter<Headers> = {
  keys: (carrier) => [...carrier.keys()],
  get: (carrier, key) => carrier.get(key) ?? undefined,
};

type NodeHeaders = Readonly<Record<string, string | string[] | undefined>>;
const nodeHeadersGetter: TextMapGetter<NodeHeaders> = {
  keys: (carrier) => Object.keys(carrier),
  // Only a single header value is a valid traceparent; a repeated one is ignored (a new trace).
  get: (carrier, key) => {
    const value = carrier[key];
    return typeof value === "string" ? value : undefined;
  },
};

/** The `rpc.*` attributes of a call (OpenTelemetry's RPC semantic conventions). */
function rpcAttributes(service: string, method: string) {
  return { "rpc.system": "grpc", "rpc.service": service, "rpc.method": method };
}

/**
 * Starts the SERVER span of a call from its request headers (Fetch `Headers` on the Connect path,
 * node's header object on the raw path), or returns undefined when tracing is off.
 */
export function startServerSpan(app: string, service: string, method: string, headers: Headers | NodeHeaders): Span | undefined {
  if (!active) return undefined;
  const parent =
    headers instanceof Headers ? propagation.extract(ROOT_CONTEXT, headers, headersGetter) : propagation.extract(ROOT_CONTEXT, headers, nodeHeadersGetter);
  return tracer().startSpan(
    `${service}/${method}`,
    { kind: SpanKind.SERVER, attributes: { ...rpcAttributes(service, method), [SERVICE_ATTRIBUTE]: app } },
    parent,
  );
}

/** The context in which a call's handler runs: the active one with `span` current. */
export function contextWith(span: Span | undefined): Context {
  return span ? trace.setSpan(context.active(), span) : context.active();
}

/**
 * Ends a call's span with its gRPC status: `rpc.grpc.status_code` always; status ERROR as the RPC
 * conventions say — on a server for the codes that mean the server failed (Unknown,
 * DeadlineExceeded, Unimplemented, Internal, Unavailable, DataLoss), on a client for any error.
 */
export function endRpcSpan(span: Span | undefined, error: ConnectError | undefined, kind: "server" | "client", canceled = false): void {
  if (!span) return;
  const code = error ? error.code : canceled ? Code.Canceled : 0;
  span.setAttribute("rpc.grpc.status_code", code);
  if (error && (kind === "client" || SERVER_FAULTS.has(error.code))) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: `${Code[error.code] ?? "Unknown"}: ${error.rawMessage.slice(0, 200)}` });
  }
  span.end();
}

const SERVER_FAULTS = new Set([Code.Unknown, Code.DeadlineExceeded, Code.Unimplemented, Code.Internal, Code.Unavailable, Code.DataLoss]);

/**
 * The client side: a CLIENT span per call (retries included) with `traceparent` sent along, so
 * the server's span continues this trace. Does nothing when tracing is off.
 */
export const tracingClientInterceptor: Interceptor = (next) => async (req) => {
  if (!active) return next(req);
  const { span, context: ctx } = startClientSpan(req.method.parent.typeName, req.method.name, req.url, (key, value) => req.header.set(key, value));
  try {
    const res = await context.with(ctx, () => next(req));
    if (!res.stream) {
      endRpcSpan(span, undefined, "client");
      return res;
    }
    const messages = res.message;
    async function* traced() {
      let error: ConnectError | undefined;
      try {
        yield* messages;
      } catch (err) {
        error = ConnectError.from(err);
        throw err;
      } finally {
        endRpcSpan(span, error, "client");
      }
    }
    return { ...res, message: traced() };
  } catch (err) {
    endRpcSpan(span, ConnectError.from(err), "client");
    throw err;
  }
};

/**
 * Starts the CLIENT span of a call to `service`/`method` at `url` and hands `setHeader` the trace
 * context to send along (`traceparent`). Only while tracing is on (callers check {@link tracingActive}).
 */
export function startClientSpan(service: string, method: string, url: string, setHeader: (key: string, value: string) => void): { span: Span; context: Context } {
  const parsed = safeUrl(url);
  const span = tracer().startSpan(`${service}/${method}`, {
    kind: SpanKind.CLIENT,
    attributes: { ...rpcAttributes(service, method), ...(parsed ? { "server.address": parsed.hostname, "server.port": Number(parsed.port || 443) } : {}) },
  });
  const ctx = trace.setSpan(context.active(), span);
  propagation.inject(ctx, undefined, { set: (_carrier, key, value) => setHeader(key, value) });
  return { span, context: ctx };
}

function safeUrl(text: string): URL | undefined {
  try {
    return new URL(text);
  } catch {
    return undefined;
  }
}

/**
 * Iterates `source` with `ctx` current while each item is produced (an async generator otherwise
 * runs in whatever context pulls it), passing an early end on to it.
 */
export async function* iterateIn<T>(ctx: Context, source: AsyncIterable<T>): AsyncGenerator<T> {
  const iterator = source[Symbol.asyncIterator]();
  let finished = false;
  try {
    for (;;) {
      let step: IteratorResult<T>;
      try {
        step = await context.with(ctx, () => iterator.next());
      } catch (err) {
        finished = true;
        throw err;
      }
      if (step.done) {
        finished = true;
        return;
      }
      yield step.value;
    }
  } finally {
    if (!finished) await context.with(ctx, async () => iterator.return?.());
  }
}

/** The ids a log line carries while a span is current (`{}` when none is, or tracing is off). */
export function traceFields(): { trace_id?: string; span_id?: string } {
  if (!active) return {};
  const span = trace.getSpan(context.active());
  return span ? idsOf(span.spanContext()) : {};
}

/** The `trace_id` and `span_id` fields of a span, for a log line written outside its context. */
export function idsOf(spanContext: SpanContext | undefined): { trace_id?: string; span_id?: string } {
  if (!spanContext || !trace.isSpanContextValid(spanContext)) return {};
  return { trace_id: spanContext.traceId, span_id: spanContext.spanId };
}

/**
 * Runs `fn` in an INTERNAL span that is a child of the current span, or just runs it when no span
 * is current (tracing off, or work no call started). For steps worth seeing inside a call's trace,
 * such as a directive pushed to a box's stream; `links` point at related traces (the stream's own).
 */
export function inChildSpan<T>(name: string, attributes: Record<string, string | number | boolean | string[]>, links: readonly Link[], fn: () => T): T {
  if (!active || trace.getSpan(context.active()) === undefined) return fn();
  return tracer().startActiveSpan(name, { attributes, links: [...links] }, (span) => {
    try {
      return fn();
    } finally {
      span.end();
    }
  });
}

/** The current span's context, to link to later (undefined when tracing is off or none is current). */
export function currentSpanContext(): SpanContext | undefined {
  if (!active) return undefined;
  return trace.getSpan(context.active())?.spanContext();
}
