/**
 * After a restore from a backup, a box may hold a lease newer than the database remembers. Its
 * hello reports that seq; licensing raises the licence's lease seq to it, so the next lease is
 * above anything the box has seen (a repeat of a seen seq is refused by the box, which would then
 * lock when its lease ran out). Only upwards, and only within reason: a wild report is ignored.
 */
import { decodeJwt } from "jose";
import { DirectiveType, type Directive } from "@lcp/proto/licensing/v1/types_pb";
import { testDatabases } from "@lcp/testing/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { beat, helloOf, rawStream, until } from "./heartbeat-support.js";
import { activateBox, newBox, provisionOnPrem, startHarness, type LicensingHarness } from "./support.js";

describe.each(testDatabases())("lease seq after a restore ($name)", (tdb) => {
  let h: LicensingHarness;
  beforeAll(async () => {
    h = await startHarness(tdb);
  });
  afterAll(async () => {
    await h?.close();
  });

  const storedSeq = async (licenseId: string) => Number((await h.sql<{ lease_seq: number | string }>(`select lease_seq from license where id = '${licenseId}'`))[0]!.lease_seq);
  const seqOf = (d: Directive) => decodeJwt(d.leaseToken).seq as number;

  it("continues above the seq the box reports, never below it", async () => {
    const { deployment, license } = await provisionOnPrem(h);
    const box = await newBox(h, deployment.id);
    await activateBox(h, license, box);
    const stored = await storedSeq(license.id);
    const boxSeen = stored + 5; // leases the restored database never saw

    const stream = rawStream(h, box);
    stream.send(helloOf(license, box, BigInt(boxSeen)));
    stream.send(beat(1n));
    await until(() => stream.responses.some((r) => r.kind.case === "ack"), "the ack");
    expect(await storedSeq(license.id)).toBe(boxSeen);

    await h.admin("support").sendDirective({ deploymentId: deployment.id, type: DirectiveType.RENEW_LEASE, reason: "after restore" });
    await until(() => stream.responses.some((r) => r.kind.case === "directive" && r.kind.value.type === DirectiveType.RENEW_LEASE), "the pushed lease");
    const pushed = stream.responses.find((r) => r.kind.case === "directive" && r.kind.value.type === DirectiveType.RENEW_LEASE)!.kind.value as Directive;
    expect(seqOf(pushed)).toBe(boxSeen + 1);
    stream.end();
    await stream.ended;

    // A box reporting less than the database holds (an older lease) moves nothing down.
    const again = rawStream(h, box);
    again.send(helloOf(license, box, 1n));
    again.send(beat(1n));
    await until(() => again.responses.some((r) => r.kind.case === "ack"), "the ack");
    expect(await storedSeq(license.id)).toBe(boxSeen + 1);
    again.end();
    await again.ended;
  });

  it("ignores a report beyond any real count, and the stream carries on", async () => {
    const { deployment, license } = await provisionOnPrem(h);
    const box = await newBox(h, deployment.id);
    await activateBox(h, license, box);
    const stored = await storedSeq(license.id);
    const stream = rawStream(h, box);
    stream.send(helloOf(license, box, 2n ** 40n));
    stream.send(beat(1n));
    await until(() => stream.responses.some((r) => r.kind.case === "ack"), "the ack");
    expect(await storedSeq(license.id)).toBe(stored);
    stream.end();
    expect(await stream.ended).toBeUndefined();
  });
});
