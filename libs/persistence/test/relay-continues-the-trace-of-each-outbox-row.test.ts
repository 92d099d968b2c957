/**
 * Trace context through the outbox: an event recorded while a span is current keeps that span's
 * traceparent on its row; the relay delivers a batch inside an `outbox.deliver` span whose parent
 * is the batch's first traced row and which links to the other traces (at most 32). Untraced rows
 * start nothing, and a traceparent tampered with in the table is ignored, never a failed delivery.
 */
import { context, propagation, trace, type SpanContext } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { InMemorySpanExporter, NodeTracerProvider, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-node";
import { rawQuery, testDatabases, type TestDatabaseOptions } from "@lcp/testing/db";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createOutboxRelay, newAuditEvent, writeAuditNow, type Database } from "../src/index.js";
import { MAX_LINKS } from "../src/outbox-trace.js";
import { fixturePerTest } from "./helpers.js";

const exporter = new InMemorySpanExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const tracer = () => trace.getTracer("test");

beforeAll(() => {
  provider.register({ propagator: new W3CTraceContextPropagator() });
});
afterAll(async () => {
  await provider.shutdown();
  trace.disable();
  context.disable();
  propagation.disable();
});

const event = (i: number) => newAuditEvent({ action: `test.${i}`, actor: { kind: "system", id: "test" }, resource: { type: "thing", id: String(i) }, outcome: "success" });

/** Records event `i` inside a span of its own (as a traced call would); resolves to the span's context. */
async function recordTraced(db: Database, i: number): Promise<SpanContext> {
  return tracer().startActiveSpan(`call ${i}`, async (span) => {
    await writeAuditNow(db, event(i));
    span.end();
    return span.spanContext();
  });
}

describe.each(testDatabases())("relay tracing ($name)", (tdb) => {
  let opts: TestDatabaseOptions;
  let db: Database;
  fixturePerTest(tdb, (o, d) => {
    opts = o;
    db = d;
  });
  beforeEach(() => exporter.reset());

  const deliveries = () => exporter.getFinishedSpans().filter((s) => s.name === "outbox.deliver");

  it("stores the current call's traceparent and delivers in a span of that trace, linked to the others", async () => {
    const first = await recordTraced(db, 1);
    await writeAuditNow(db, event(2));
    const second = await recordTraced(db, 3);
    const rows = await rawQuery<{ traceparent: string | null }>(opts, "select traceparent from outbox_event order by seq");
    expect(rows.map((r) => r.traceparent)).toEqual([`00-${first.traceId}-${first.spanId}-01`, null, `00-${second.traceId}-${second.spanId}-01`]);

    let during: SpanContext | undefined;
    const relay = createOutboxRelay({ db, name: "licensing", deliver: async () => void (during = trace.getActiveSpan()?.spanContext()) });
    expect(await relay.flushNow()).toBe(3);
    const [span] = deliveries();
    expect(deliveries()).toHaveLength(1);
    expect(span!.spanContext().traceId).toBe(first.traceId);
    expect(span!.parentSpanContext?.spanId).toBe(first.spanId);
    expect(span!.links.map((l) => l.context.spanId)).toEqual([second.spanId]);
    expect(span!.attributes).toMatchObject({ "lcp.service": "licensing", "lcp.outbox.events": 3, "lcp.outbox.traces": 2 });
    // Append is called inside the span, so its client call continues the trace.
    expect(during?.spanId).toBe(span!.spanContext().spanId);
  });

  it("starts nothing for untraced rows, ignores a tampered traceparent, and bounds the links", async () => {
    await writeAuditNow(db, event(1));
    await recordTraced(db, 2);
    await rawQuery(opts, "update outbox_event set traceparent = '00-not-a-trace--x'");
    const relay = createOutboxRelay({ db, deliver: async () => undefined, batchSize: 100 });
    expect(await relay.flushNow()).toBe(2);
    expect(deliveries()).toHaveLength(0);

    const traced: SpanContext[] = [];
    for (let i = 0; i < MAX_LINKS + 5; i++) traced.push(await recordTraced(db, 10 + i));
    expect(await relay.flushNow()).toBe(MAX_LINKS + 5);
    const [span] = deliveries();
    expect(span!.parentSpanContext?.spanId).toBe(traced[0]!.spanId);
    expect(span!.links).toHaveLength(MAX_LINKS);
  });
});
