/**
 * Tracing in a process that runs several services (as tests do): the first service with tracing
 * settings starts the one SDK, every server's spans reach the OTLP/HTTP receiver naming their own
 * service (`lcp.service`), log lines carry the ids, the SDK stays up while any service runs, and
 * stopping the last one flushes the spans still batched. Without settings nothing is started.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { create } from "@bufbuild/protobuf";
import { outboxEntities } from "@lcp/persistence";
import { Health, HealthCheckRequestSchema } from "@lcp/proto/grpc/health/v1/health_pb";
import { createClient, traceFields, tracingActive } from "@lcp/rpc";
import { startOtlpReceiver, type OtlpReceiver } from "@lcp/testing/otlp";
import { createTestPki, type TestPki } from "@lcp/testing/pki";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startService, type RunningService } from "../src/index.js";

describe("one tracing SDK per process", () => {
  let dir: string;
  let pki: TestPki;
  let receiver: OtlpReceiver;
  const lines: Array<Record<string, unknown>> = [];
  const savedDelay = process.env.OTEL_BSP_SCHEDULE_DELAY;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "lcp-tracing-"));
    pki = await createTestPki();
    receiver = await startOtlpReceiver();
    // Spans are batched for a minute: only a flush at stop can deliver them within this test.
    process.env.OTEL_BSP_SCHEDULE_DELAY = "60000";
  });
  afterAll(async () => {
    if (savedDelay === undefined) delete process.env.OTEL_BSP_SCHEDULE_DELAY;
    else process.env.OTEL_BSP_SCHEDULE_DELAY = savedDelay;
    await receiver.close();
    await rm(dir, { recursive: true, force: true });
  });

  const logger = pino(
    { level: "info", mixin: traceFields },
    new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString("utf8").split("\n")) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    }),
  );

  async function start(name: "audit" | "signing-keys", traced: boolean): Promise<RunningService> {
    const cert = await pki.service(name);
    return startService(
      {
        name,
        config: {
          port: 0,
          tls: { certPem: cert.certPem, keyPem: cert.keyPem, caPem: pki.ca.certPem },
          trustDomain: pki.trustDomain,
          logger: logger.child({ service: name }),
          ...(traced ? { tracing: { url: `${receiver.endpoint}/v1/traces` } } : {}),
        },
        database: { dataDir: dir, entities: outboxEntities, migrations: { sqlite: [], postgresql: [] } },
        outbox: false,
      },
      async ({ listen, ready }) => ready(await listen({ register: () => undefined })),
    );
  }

  const check = (service: RunningService, requestId: string) =>
    createClient(Health, { baseUrl: service.url, tls: { caPem: pki.ca.certPem }, retries: 0 }).check(create(HealthCheckRequestSchema, { service: "" }), {
      headers: { "x-request-id": requestId },
    });
  const spanOf = (requestId: string) => receiver.spans.find((s) => s.attributes["lcp.request_id"] === requestId);

  it("starts nothing without an OTLP endpoint", async () => {
    const plain = await start("audit", false);
    try {
      expect(tracingActive()).toBe(false);
      await check(plain, "untraced");
    } finally {
      await plain.close();
    }
    expect(lines.find((l) => l["requestId"] === "untraced")).not.toHaveProperty("trace_id");
  });

  it("exports every service's spans under its own name, and flushes when the last one stops", async () => {
    const audit = await start("audit", true);
    const signing = await start("signing-keys", true);
    expect(tracingActive()).toBe(true);
    await check(audit, "to-audit");
    await check(signing, "to-signing");

    await audit.close();
    // The other service still runs: the SDK stays up, its spans still batched.
    expect(tracingActive()).toBe(true);
    expect(receiver.spans).toEqual([]);
    await check(signing, "after-audit-stopped");

    await signing.close();
    expect(tracingActive()).toBe(false);
    expect(spanOf("to-audit")).toMatchObject({ name: "grpc.health.v1.Health/Check", kind: 2, attributes: expect.objectContaining({ "lcp.service": "audit" }) });
    expect(spanOf("to-signing")?.attributes["lcp.service"]).toBe("signing-keys");
    expect(spanOf("after-audit-stopped")?.attributes["lcp.service"]).toBe("signing-keys");
    // One resource per process: the first service's name (OTEL_SERVICE_NAME would override it).
    expect(new Set(receiver.spans.map((s) => s.resourceService))).toEqual(new Set(["audit"]));

    // Each call's log line names its span.
    const line = lines.find((l) => l["requestId"] === "to-signing" && l["msg"] === "rpc");
    expect(line).toMatchObject({ trace_id: spanOf("to-signing")!.traceId, span_id: spanOf("to-signing")!.spanId });
  });

  it("names the resource after OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES when they are set", async () => {
    process.env.OTEL_SERVICE_NAME = "audit-eu-1";
    process.env.OTEL_RESOURCE_ATTRIBUTES = "deployment.environment.name=staging";
    try {
      const audit = await start("audit", true);
      await check(audit, "named");
      await audit.close();
    } finally {
      delete process.env.OTEL_SERVICE_NAME;
      delete process.env.OTEL_RESOURCE_ATTRIBUTES;
    }
    expect(spanOf("named")).toMatchObject({
      resourceService: "audit-eu-1",
      resource: expect.objectContaining({ "deployment.environment.name": "staging" }),
      attributes: expect.objectContaining({ "lcp.service": "audit" }),
    });
  });
});
