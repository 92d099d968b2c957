/**
 * Bad inputs on the Heartbeat stream get the right code, the stream ends cleanly (the server
 * closes it; nothing hangs) and nothing is written: a beat before hello (InvalidArgument); the
 * certificate of another deployment (PermissionDenied); a certificate whose serial was revoked by a
 * rebind (Unauthenticated, audited authz.denied and nothing else); a fingerprint other than the
 * bound one (LOCK pushed first, then FailedPrecondition FINGERPRINT_MISMATCH); 1,000 beats a second
 * from one box (ResourceExhausted); a 5 MB message (ResourceExhausted, the 1 MiB limit).
 */
import { Code } from "@connectrpc/connect";
import { DirectiveType } from "@lcp/proto/licensing/v1/types_pb";
import { errorReason } from "@lcp/rpc";
import { testDatabases } from "@lcp/testing/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { beat, helloOf, rawStream, until, writesNothing } from "./heartbeat-support.js";
import { activateBox, auditEvents, newBox, provisionOnPrem, startHarness, type Box, type LicensingHarness } from "./support.js";

describe.each(testDatabases())("heartbeat bad inputs ($name)", (tdb) => {
  let h: LicensingHarness;
  beforeAll(async () => {
    h = await startHarness(tdb);
  });
  afterAll(async () => {
    await h?.close();
  });

  async function activated(): Promise<{ license: Awaited<ReturnType<typeof provisionOnPrem>>["license"]; box: Box }> {
    const { deployment, license } = await provisionOnPrem(h);
    const box = await newBox(h, deployment.id);
    await activateBox(h, license, box);
    return { license, box };
  }

  it("a beat before hello: InvalidArgument", async () => {
    const { box } = await activated();
    await writesNothing(h, async () => {
      const s = rawStream(h, box);
      s.send(beat(1n));
      const err = await s.ended;
      expect(Code[err!.code]).toBe("InvalidArgument");
      expect(s.responses).toEqual([]);
    });
  });

  it("a certificate of another deployment: PermissionDenied", async () => {
    const a = await activated();
    const b = await activated();
    await writesNothing(h, async () => {
      const s = rawStream(h, a.box);
      s.send(helloOf(b.license, b.box));
      const err = await s.ended;
      expect(Code[err!.code]).toBe("PermissionDenied");
      expect(errorReason(err)).toBe("WRONG_DEPLOYMENT");
    });
  });

  it("a revoked certificate serial (after a rebind): Unauthenticated, only authz.denied recorded", async () => {
    const { license, box } = await activated();
    await h.admin("support").rebindLicense({ licenseId: license.id, newFingerprint: "replacement", reason: "board swap" });
    const eventsBefore = (await auditEvents(h)).length;
    await writesNothing(
      h,
      async () => {
        const s = rawStream(h, box);
        s.send(helloOf(license, box));
        const err = await s.ended;
        expect(Code[err!.code]).toBe("Unauthenticated");
      },
      ({ outbox_event: _, ...rest }) => rest,
    );
    const after = (await auditEvents(h)).slice(eventsBefore);
    expect(after.map((e) => e.action)).toEqual(["authz.denied"]);
    expect(after[0]!.outcome).toMatch(/denied/i);
  });

  it("another fingerprint than the bound one: LOCK, then FailedPrecondition FINGERPRINT_MISMATCH", async () => {
    const { license, box } = await activated();
    await writesNothing(h, async () => {
      const s = rawStream(h, box);
      s.send(helloOf(license, { ...box, fingerprint: "someone-elses-board" }));
      const err = await s.ended;
      expect(Code[err!.code]).toBe("FailedPrecondition");
      expect(errorReason(err)).toBe("FINGERPRINT_MISMATCH");
      expect(s.responses.map((r) => r.kind.case === "directive" && r.kind.value.type)).toEqual([DirectiveType.LOCK]);
    });
  });

  it("1,000 beats a second from one box: ResourceExhausted", async () => {
    const { license, box } = await activated();
    // The first beats within the burst are real beats and refresh last_seen; nothing else is written.
    await writesNothing(
      h,
      async () => {
        const s = rawStream(h, box);
        s.send(helloOf(license, box));
        let n = 0n;
        const flood = setInterval(() => {
          for (let i = 0; i < 10; i++) s.send(beat(++n));
        }, 10);
        const err = await s.ended;
        clearInterval(flood);
        expect(Code[err!.code]).toBe("ResourceExhausted");
        expect(s.responses.filter((r) => r.kind.case === "ack").length).toBeLessThanOrEqual(25);
      },
      (snap) => ({ ...snap, deployment: JSON.stringify(JSON.parse(snap.deployment!).map((r: string) => JSON.stringify({ ...JSON.parse(r), last_seen_at: null }))) }),
    );
  });

  it("a 5 MB message: ResourceExhausted", async () => {
    const { license, box } = await activated();
    await writesNothing(h, async () => {
      const s = rawStream(h, box);
      s.send({ kind: { case: "hello", value: { licenseId: license.id, fingerprint: box.fingerprint, agentVersion: "x".repeat(5 * 1024 * 1024) } } });
      const err = await s.ended;
      expect(Code[err!.code]).toBe("ResourceExhausted");
    });
  });

  it("N beats of many boxes within a second cost ONE last_seen statement", async () => {
    const boxes = await Promise.all([1, 2, 3, 4, 5].map(() => activated()));
    const streams = boxes.map(({ license, box }) => {
      const s = rawStream(h, box);
      s.send(helloOf(license, box));
      return s;
    });
    await until(() => streams.every((s) => s.responses.length >= 0), "streams open");
    await new Promise((r) => setTimeout(r, 1_500));
    const { metric } = await import("./heartbeat-support.js");
    const before = await metric(h, "licensing_heartbeat_last_seen_statements_total");
    const beatsBefore = await metric(h, "licensing_heartbeat_beats_total");
    const seenBefore = await h.sql<{ id: string; last_seen_at: unknown }>("select id, last_seen_at from deployment");
    for (let i = 1n; i <= 3n; i++) for (const s of streams) s.send(beat(i));
    await until(() => streams.every((s) => s.responses.filter((r) => r.kind.case === "ack").length >= 3), "15 acks");
    await new Promise((r) => setTimeout(r, 1_500));
    expect(await metric(h, "licensing_heartbeat_last_seen_statements_total")).toBe(before + 1);
    expect(await metric(h, "licensing_heartbeat_beats_total")).toBe(beatsBefore + 15);
    const seenAfter = await h.sql<{ id: string; last_seen_at: unknown }>("select id, last_seen_at from deployment");
    const moved = boxes.filter(({ license }) => {
      const id = license.deploymentId;
      return String(seenAfter.find((r) => r.id === id)!.last_seen_at) !== String(seenBefore.find((r) => r.id === id)!.last_seen_at);
    });
    expect(moved.length).toBe(5);
    for (const s of streams) s.end();
    for (const s of streams) expect(await s.ended).toBeUndefined();
  });
});
