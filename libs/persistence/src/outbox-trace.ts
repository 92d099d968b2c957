/**
 * Trace context through the outbox: a change's audit rows keep the W3C `traceparent` of the call
 * that made them (column `traceparent`), and the relay delivers them to audit's Append inside an
 * `outbox.deliver` span continuing that trace, so the Append a revoke causes belongs to the
 * revoke's trace even though it runs later, from the relay's loop.
 *
 * A batch carries rows of several calls while a span has one parent: the span continues the trace
 * of the batch's first traced row and links to the others' (at most {@link MAX_LINKS}). Without a
 * tracing SDK the propagator is a no-op: nothing is stored and nothing is started.
 */
import { context, propagation, ROOT_CONTEXT, SpanStatusCode, trace, type Link } from "@opentelemetry/api";

/** A version-00 W3C traceparent, the only form stored (it is also the column's length). */
const TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;
/** The length of the `traceparent` column. */
export const TRACEPARENT_LENGTH = 55;
/** Links per delivery span: enough to find every trace of an ordinary batch, bounded for a big one. */
export const MAX_LINKS = 32;

/** The current call's traceparent, to store with an outbox row; null when no trace is current. */
export function currentTraceparent(): string | null {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  const value = carrier["traceparent"];
  return value !== undefined && TRACEPARENT.test(value) ? value : null;
}

/**
 * Runs `deliver` in an `outbox.deliver` span continuing the traces of `traceparents` (one per
 * event, null for an untraced one); just runs it when none is traced.
 */
export async function inDeliverySpan<T>(service: string | undefined, traceparents: readonly (string | null | undefined)[], deliver: () => Promise<T>): Promise<T> {
  const distinct = [...new Set(traceparents.filter((t): t is string => typeof t === "string" && TRACEPARENT.test(t)))];
  if (distinct.length === 0) return deliver();
  const contextOf = (traceparent: string) => propagation.extract(ROOT_CONTEXT, { traceparent });
  const links: Link[] = [];
  for (const traceparent of distinct.slice(1, 1 + MAX_LINKS)) {
    const linked = trace.getSpanContext(contextOf(traceparent));
    if (linked) links.push({ context: linked });
  }
  const tracer = trace.getTracer("@lcp/persistence");
  const attributes = {
    ...(service ? { "lcp.service": service } : {}),
    "lcp.outbox.events": traceparents.length,
    "lcp.outbox.traces": distinct.length,
  };
  return tracer.startActiveSpan("outbox.deliver", { attributes, links }, contextOf(distinct[0]!), async (span) => {
    try {
      return await deliver();
    } catch (err) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message.slice(0, 200) : "delivery failed" });
      throw err;
    } finally {
      span.end();
    }
  });
}
