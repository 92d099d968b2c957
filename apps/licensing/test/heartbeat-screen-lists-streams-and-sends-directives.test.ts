/**
 * The heartbeat screen (licensing/heartbeats): ListHeartbeats shows last seen, lag, connected and
 * the replica holding the stream, agent version, lease seq and pending directives, with filters and
 * keyset pages; SendDirective pushes REFRESH_KEYS, SET_INTERVAL and RENEW_LEASE to a streaming SDK
 * box at once (`delivered`), stores them for a box that is away (delivered false, pending until it
 * calls), refuses bad input and callers without directive.send, and audits directive.send. An
 * HTTP/1.1 box on the unary SendHeartbeat gets its pending directive in the answer and acks it.
 */
import { Code } from "@connectrpc/connect";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { DeploymentState, DirectiveType } from "@lcp/proto/licensing/v1/types_pb";
import { testDatabases } from "@lcp/testing/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSdkBoxes, FAST, nextDirective, setSettings, until } from "./heartbeat-support.js";
import { activateBox, auditEvents, expectRefusal, newBox, provisionOnPrem, startHarness, type LicensingHarness } from "./support.js";

describe.each(testDatabases())("heartbeat screen ($name)", (tdb) => {
  let h: LicensingHarness;
  let boxes: Awaited<ReturnType<typeof createSdkBoxes>>;
  beforeAll(async () => {
    h = await startHarness(tdb);
    boxes = await createSdkBoxes();
    await setSettings(h, { ...FAST, heartbeatTimeoutMs: 5_000, graceWindowMs: 60_000, leaseRenewAfterMs: 30_000 });
  });
  afterAll(async () => {
    await boxes?.stopAll();
    await h?.close();
  });

  it("lists a streaming box and pushes operator directives to it at once", async () => {
    const support = h.admin("support");
    const { deployment, license } = await provisionOnPrem(h);
    const box = await boxes.box(h, license);
    await box.activate();
    box.start();
    await until(() => box.status().connected, "the stream to be healthy");
    await until(async () => (await support.listHeartbeats({ deploymentId: deployment.id })).heartbeats[0]?.connected === true, "presence", 3_000);
    const [status] = (await support.listHeartbeats({ deploymentId: deployment.id })).heartbeats;
    expect(status).toMatchObject({ deploymentId: deployment.id, licenseId: license.id, connected: true, replica: "test", agentVersion: "sdk-test/2.0", state: DeploymentState.ACTIVE });
    expect(status!.leaseSeq).toBeGreaterThanOrEqual(1n);
    expect(Number(status!.lag!.seconds)).toBeLessThan(3);

    const interval = nextDirective(box, "SET_INTERVAL");
    const sent = await support.sendDirective({ deploymentId: deployment.id, type: DirectiveType.SET_INTERVAL, heartbeatInterval: durationFromMs(2_000), reason: "calmer" });
    expect(sent.delivered).toBe(true);
    expect(sent.directive!.type).toBe(DirectiveType.SET_INTERVAL);
    await interval;
    expect(box.status().heartbeatIntervalMs).toBe(2_000);

    const keys = nextDirective(box, "REFRESH_KEYS");
    expect((await support.sendDirective({ deploymentId: deployment.id, type: DirectiveType.REFRESH_KEYS })).delivered).toBe(true);
    await keys;

    const seq = box.status().leaseSeq!;
    const lease = nextDirective(box, "RENEW_LEASE");
    const renewed = await support.sendDirective({ deploymentId: deployment.id, type: DirectiveType.RENEW_LEASE, reason: "fresh lease" });
    expect(renewed.directive!.leaseToken).not.toBe("");
    await lease;
    expect(box.status().leaseSeq).toBe(seq + 1);

    // All acknowledged by the box.
    await until(async () => (await support.listHeartbeats({ deploymentId: deployment.id })).heartbeats[0]?.pendingDirectives === 0, "acks", 3_000);
    const sends = (await auditEvents(h)).filter((e) => e.action === "directive.send" && e.resourceId === deployment.id);
    expect(sends.map((e) => e.details["type"])).toEqual(["SET_INTERVAL", "REFRESH_KEYS", "RENEW_LEASE"]);
  });

  it("stores a directive for a box that is away, and the unary heartbeat delivers it", async () => {
    const support = h.admin("support");
    const { deployment, license } = await provisionOnPrem(h);
    const box = await boxes.box(h, license, { httpVersion: "1.1" });
    await box.activate();
    const sent = await support.sendDirective({ deploymentId: deployment.id, type: DirectiveType.SET_INTERVAL, heartbeatInterval: durationFromMs(3_000) });
    expect(sent.delivered).toBe(false);
    let [status] = (await support.listHeartbeats({ deploymentId: deployment.id })).heartbeats;
    expect(status).toMatchObject({ connected: false, replica: "", pendingDirectives: 1 });

    const once = await box.sendHeartbeatOnce();
    expect(once).toMatchObject({ ok: true, directives: 1 });
    expect(box.status().heartbeatIntervalMs).toBe(3_000);
    // The ack rides on the next call.
    expect(await box.sendHeartbeatOnce()).toMatchObject({ ok: true, directives: 0 });
    [status] = (await support.listHeartbeats({ deploymentId: deployment.id })).heartbeats;
    expect(status!.pendingDirectives).toBe(0);
  });

  it("refuses bad directives and callers without directive.send; pages and filters the list", async () => {
    const support = h.admin("support");
    const { deployment, license } = await provisionOnPrem(h);
    await expectRefusal(support.sendDirective({ deploymentId: deployment.id, type: DirectiveType.REFRESH_KEYS }), Code.FailedPrecondition, "NOT_ACTIVATED");
    await activateBox(h, license, await newBox(h, deployment.id));
    await expectRefusal(
      support.sendDirective({ deploymentId: deployment.id, type: DirectiveType.SET_INTERVAL, heartbeatInterval: durationFromMs(500) }),
      Code.InvalidArgument,
      "SETTINGS_OUT_OF_RANGE",
    );
    await expectRefusal(support.sendDirective({ deploymentId: deployment.id, type: DirectiveType.LOCK }), Code.InvalidArgument, "INVALID_ARGUMENT");
    await expectRefusal(support.sendDirective({ deploymentId: "not-a-uuid", type: DirectiveType.REFRESH_KEYS }), Code.InvalidArgument);
    await expectRefusal(h.admin("auditor").sendDirective({ deploymentId: deployment.id, type: DirectiveType.REFRESH_KEYS }), Code.PermissionDenied);
    await expectRefusal(h.admin("onboarding").listHeartbeats({}), Code.PermissionDenied);
    expect((await h.admin("auditor").listHeartbeats({ deploymentId: deployment.id })).heartbeats).toHaveLength(1);

    const seen = new Set<string>();
    let pageToken = "";
    do {
      const page = await support.listHeartbeats({ pageSize: 2, pageToken, states: [DeploymentState.ACTIVE] });
      expect(page.heartbeats.length).toBeLessThanOrEqual(2);
      for (const s of page.heartbeats) {
        expect(s.state).toBe(DeploymentState.ACTIVE);
        expect(seen.has(s.deploymentId)).toBe(false);
        seen.add(s.deploymentId);
      }
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    expect(seen.has(deployment.id)).toBe(true);
    await expectRefusal(support.listHeartbeats({ pageToken: "garbage" }), Code.InvalidArgument, "PAGE_TOKEN_INVALID");
  });
});
