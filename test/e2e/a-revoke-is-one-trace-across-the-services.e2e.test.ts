/**
 * Tracing across the real processes: with OTEL_EXPORTER_OTLP_ENDPOINT aimed at an in-test OTLP/HTTP
 * receiver, one revoke (sent with the caller's own traceparent) yields one trace holding licensing's
 * RevokeLicense span, the LOCK pushed onto the box's raw heartbeat stream, the outbox delivery and
 * audit's Append of the revoke's events; an activation's lease signing reaches signing-keys inside
 * the activation's trace; log lines carry the trace and span ids. A malformed traceparent from a
 * caller starts a fresh trace; an oversized tracestate is dropped and never reaches the logs.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Appliance } from "@lcp/appliance-sdk";
import { LicensingService } from "@lcp/proto/licensing/v1/licensing_service_pb";
import { DeploymentKind, type License } from "@lcp/proto/licensing/v1/types_pb";
import { startCluster, type Cluster } from "../support/cluster.js";
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from "@lcp/testing/otlp";
import { applianceFor, auditTrail, eventually, nextDirective } from "../support/story.js";

const SERVER = 2;

describe("a revoke is one trace across the services", () => {
  let receiver: OtlpReceiver;
  let cluster: Cluster;
  let box: Appliance | undefined;
  let license: License;

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    cluster = await startCluster({
      // SQLite keeps this to the processes; the trace does not depend on the driver.
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY: "100", LOG_LEVEL: "info" },
      startTimeoutMs: 120_000,
    });
  }, 300_000);

  afterAll(async () => {
    await box?.stop().catch(() => undefined);
    await cluster?.stop();
    await receiver?.close();
  }, 60_000);

  const inTrace = (traceId: string) => receiver.spans.filter((s) => s.traceId === traceId);
  const find = (spans: readonly ReceivedSpan[], name: string, service: string) =>
    spans.find((s) => s.name === name && s.attributes["lcp.service"] === service && s.kind === SERVER);

  it("an activation's lease is signed by signing-keys inside the activation's trace", async () => {
    const support = cluster.adminClient(LicensingService, "onboarding");
    const made = await support.provisionDeployment({ name: "traced-ward", customer: "st-mary", kind: DeploymentKind.ON_PREM });
    license = made.license!;
    box = await applianceFor(cluster, license, "traced-ward-mainboard");
    await box.activate();
    box.start();
    await eventually("the box streaming", () => (box!.status().connected ? true : undefined));

    const activate = await eventually("licensing's Activate span", () => find(receiver.spans, "licensing.v1.ApplianceService/Activate", "licensing"));
    expect(activate.resourceService).toBe("licensing");
    const sign = await eventually("signing-keys' Sign span in the same trace", () =>
      find(inTrace(activate.traceId), "signing.v1.SigningKeyService/Sign", "signing-keys"),
    );
    expect(sign.resourceService).toBe("signing-keys");
    // Licensing's client span sits between the two servers' spans.
    const client = await eventually("licensing's Sign call", () => inTrace(activate.traceId).find((s) => s.spanId === sign.parentSpanId));
    expect(client).toMatchObject({ kind: 3, name: "signing.v1.SigningKeyService/Sign", resourceService: "licensing" });
    expect(sign.attributes).toMatchObject({ "rpc.system": "grpc", "rpc.service": "signing.v1.SigningKeyService", "rpc.method": "Sign", "rpc.grpc.status_code": 0 });
  });

  it("one revoke yields one trace: licensing, the push to the box, the outbox delivery and audit's Append", async () => {
    // The activation's events are in audit before the revoke, so the revoke's go out in a batch of their own.
    await eventually("the activation audited", async () => ((await auditTrail(cluster)).some((e) => e.action === "license.activate") ? true : undefined));

    const traceId = randomBytes(16).toString("hex");
    const callerSpanId = randomBytes(8).toString("hex");
    const lock = nextDirective(box!, "LOCK");
    await cluster
      .adminClient(LicensingService, "support")
      .revokeLicense({ licenseId: license.id, reason: "reported stolen" }, { headers: { traceparent: `00-${traceId}-${callerSpanId}-01` } });
    await lock;

    const revoke = await eventually("licensing's RevokeLicense span", () => find(inTrace(traceId), "licensing.v1.LicensingService/RevokeLicense", "licensing"));
    expect(revoke.parentSpanId).toBe(callerSpanId);
    expect(revoke.attributes).toMatchObject({ "rpc.system": "grpc", "rpc.method": "RevokeLicense", "rpc.grpc.status_code": 0 });

    const push = await eventually("the LOCK pushed to the box", () => inTrace(traceId).find((s) => s.name === "licensing.v1.ApplianceService/Heartbeat push"));
    expect(push.parentSpanId).toBe(revoke.spanId);
    expect(push.attributes["lcp.directive_types"]).toEqual(["LOCK"]);
    // Linked to the box's own stream, a span of the raw heartbeat path (exported once the revoke ended it).
    expect(push.links).toHaveLength(1);
    const stream = await eventually("the box's heartbeat stream span", () => receiver.spans.find((s) => s.spanId === push.links[0]!.spanId));
    expect(stream).toMatchObject({ name: "licensing.v1.ApplianceService/Heartbeat", kind: SERVER, attributes: expect.objectContaining({ "lcp.service": "licensing" }) });

    const append = await eventually("audit's Append in the revoke's trace", () => find(inTrace(traceId), "audit.v1.AuditService/Append", "audit"));
    expect(append.resourceService).toBe("audit");
    // The delivery span ends after the Append it wraps, so it may arrive in a later export.
    const deliver = await eventually("licensing's outbox delivery", () => inTrace(traceId).find((s) => s.name === "outbox.deliver"));
    expect(deliver).toMatchObject({ resourceService: "licensing", attributes: expect.objectContaining({ "lcp.service": "licensing" }) });
    const appendClient = await eventually("the relay's Append call", () => inTrace(traceId).find((s) => s.spanId === append.parentSpanId));
    expect(appendClient.parentSpanId).toBe(deliver.spanId);

    // Every span of the trace comes from the revoke: nothing else was mixed into it.
    expect(new Set(inTrace(traceId).map((s) => s.resourceService))).toEqual(new Set(["licensing", "audit"]));

    // The revoke's log line names its trace and span.
    const line = cluster
      .logs("licensing")
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l["procedure"] === "licensing.v1.LicensingService/RevokeLicense");
    expect(line).toMatchObject({ trace_id: traceId, span_id: revoke.spanId });
  });

  it("a malformed traceparent starts a fresh trace; an oversized tracestate is dropped and stays out of the logs", async () => {
    const support = cluster.adminClient(LicensingService, "support");
    const offered = "ab".repeat(16);
    const cases = [
      { id: "bad-traceparent", continued: false, headers: { traceparent: `00-${offered.toUpperCase()}-zzzzzzzzzzzzzzzz-01` } },
      { id: "all-zero-trace", continued: false, headers: { traceparent: `00-${"0".repeat(32)}-${"1".repeat(16)}-01` } },
      { id: "too-long", continued: false, headers: { traceparent: `00-${offered}-${"1".repeat(16)}-01${"-x".repeat(2_000)}` } },
      {
        id: "huge-tracestate",
        continued: true,
        headers: { traceparent: `00-${offered}-${"2".repeat(16)}-01`, tracestate: Array.from({ length: 200 }, (_, i) => `k${i}=${"v".repeat(40)}`).join(",") },
      },
    ];
    for (const c of cases) {
      await support.getLicense({ licenseId: license.id }, { headers: { ...c.headers, "x-request-id": c.id } });
    }
    for (const c of cases) {
      const span = await eventually(`the span of ${c.id}`, () =>
        receiver.spans.find((s) => s.name === "licensing.v1.LicensingService/GetLicense" && s.attributes["lcp.request_id"] === c.id),
      );
      if (c.continued) expect([span.traceId, span.parentSpanId]).toEqual([offered, "2".repeat(16)]);
      else expect([span.traceId === offered, span.parentSpanId]).toEqual([false, ""]);
    }
    const logs = cluster.logs("licensing");
    expect(logs).toContain('"requestId":"huge-tracestate"');
    expect(logs).not.toContain("vvvvvvvvvv");
    expect(logs).not.toContain("-x-x-x");
    expect(receiver.refused).toBe(0);
  });
});
