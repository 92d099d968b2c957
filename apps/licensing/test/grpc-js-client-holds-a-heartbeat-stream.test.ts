/**
 * Interop: an `@grpc/grpc-js` client — independent of Connect, a generic client over protobuf-es
 * serializers, no codegen — holds a Heartbeat stream with an appliance certificate: hello, beats
 * acknowledged with server time and state, and a directive an operator sends meanwhile is pushed
 * down the same stream; the box's ack of it clears it from the pending count.
 */
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import {
  HeartbeatRequestSchema,
  HeartbeatResponseSchema,
  type HeartbeatResponse,
} from "@lcp/proto/licensing/v1/appliance_service_pb";
import { DeploymentState, DirectiveType } from "@lcp/proto/licensing/v1/types_pb";
import { testDatabases } from "@lcp/testing/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { until } from "./heartbeat-support.js";
import { activateBox, newBox, provisionOnPrem, startHarness, type LicensingHarness } from "./support.js";

const ApplianceClient = grpc.makeGenericClientConstructor(
  {
    heartbeat: {
      path: "/licensing.v1.ApplianceService/Heartbeat",
      requestStream: true,
      responseStream: true,
      requestSerialize: (m: MessageInitShape<typeof HeartbeatRequestSchema>) => Buffer.from(toBinary(HeartbeatRequestSchema, create(HeartbeatRequestSchema, m))),
      requestDeserialize: (b: Buffer) => fromBinary(HeartbeatRequestSchema, b),
      responseSerialize: (m: HeartbeatResponse) => Buffer.from(toBinary(HeartbeatResponseSchema, m)),
      responseDeserialize: (b: Buffer) => fromBinary(HeartbeatResponseSchema, b),
    },
  },
  "ApplianceService",
);

const sqlite = testDatabases().filter((d) => d.name === "sqlite");

describe.each(sqlite)("grpc-js heartbeat stream ($name)", (tdb) => {
  let h: LicensingHarness;
  let client: grpc.Client | undefined;
  beforeAll(async () => {
    h = await startHarness(tdb);
  });
  afterAll(async () => {
    client?.close();
    await h?.close();
  });

  it("holds the stream with an appliance certificate and receives a pushed directive", async () => {
    const { deployment, license } = await provisionOnPrem(h);
    const box = await newBox(h, deployment.id);
    await activateBox(h, license, box);
    const port = new URL(h.licensing.url).port;
    client = new ApplianceClient(
      `localhost:${port}`,
      grpc.credentials.createSsl(Buffer.from(h.pki.ca.certPem), Buffer.from(box.keyPem), Buffer.from(box.activation!.certificatePem)),
    );
    const call = (client as unknown as { heartbeat(): grpc.ClientDuplexStream<MessageInitShape<typeof HeartbeatRequestSchema>, HeartbeatResponse> }).heartbeat();
    const received: HeartbeatResponse[] = [];
    call.on("data", (r: HeartbeatResponse) => received.push(r));
    const ended = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
    call.on("error", () => undefined);

    call.write({ kind: { case: "hello", value: { licenseId: license.id, fingerprint: box.fingerprint, lastLeaseSeq: 1n, agentVersion: "grpc-js/1" } } });
    call.write({ kind: { case: "beat", value: { nonce: 7n } } });
    await until(() => received.some((r) => r.kind.case === "ack"), "the beat's ack");
    const ack = received.find((r) => r.kind.case === "ack")!.kind.value as { nonce: bigint; state: DeploymentState; serverTime?: unknown };
    expect(ack.nonce).toBe(7n);
    expect(ack.state).toBe(DeploymentState.ACTIVE);
    expect(ack.serverTime).toBeDefined();

    const sent = await h.admin("support").sendDirective({ deploymentId: deployment.id, type: DirectiveType.REFRESH_KEYS, reason: "rotation" });
    expect(sent.delivered).toBe(true);
    await until(() => received.some((r) => r.kind.case === "directive" && r.kind.value.id === sent.directive!.id), "the pushed directive", 2_000);
    const pushed = received.find((r) => r.kind.case === "directive")!.kind.value as { type: DirectiveType; jwksJson: string };
    expect(pushed.type).toBe(DirectiveType.REFRESH_KEYS);
    expect(JSON.parse(pushed.jwksJson).keys.length).toBeGreaterThan(0);

    call.write({ kind: { case: "ack", value: { directiveIds: [sent.directive!.id] } } });
    await until(async () => (await h.admin("support").listHeartbeats({ deploymentId: deployment.id })).heartbeats[0]?.pendingDirectives === 0, "the ack stored");
    call.end();
    expect((await ended).code).toBe(grpc.status.OK);
  });
});
