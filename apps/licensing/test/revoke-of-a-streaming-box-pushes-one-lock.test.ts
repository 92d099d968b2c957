/**
 * A revoke or a rebind tells a streaming box LOCK exactly once, and that LOCK is the stored
 * directive (the row a box that was away gets on its return, whose ack is recorded), not an
 * ephemeral copy pushed after it; the stream still ends with the refusal's code. Over a raw
 * heartbeat stream with a real box certificate, on the replica that made the change and (on
 * PostgreSQL) on another replica that hears of it through the change signal.
 */
import { Code } from "@connectrpc/connect";
import { DirectiveType, type License } from "@lcp/proto/licensing/v1/types_pb";
import { testDatabases } from "@lcp/testing/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { beat, helloOf, rawStream, startReplica, until, type RawStream } from "./heartbeat-support.js";
import { activateBox, newBox, provisionOnPrem, startHarness, type LicensingHarness } from "./support.js";

describe.each(testDatabases())("one LOCK per revoke or rebind of a streaming box ($name)", (tdb) => {
  let h: LicensingHarness;
  beforeAll(async () => {
    h = await startHarness(tdb);
  });
  afterAll(async () => {
    await h?.close();
  });

  /** A box streaming to `baseUrl`, past its first ack. */
  async function streaming(baseUrl = h.licensing.url): Promise<{ deploymentId: string; license: License; s: RawStream }> {
    const { deployment, license } = await provisionOnPrem(h);
    const box = await newBox(h, deployment.id);
    await activateBox(h, license, box);
    const s = rawStream(h, box, baseUrl);
    s.send(helloOf(license, box));
    s.send(beat(1n));
    await until(() => s.responses.some((r) => r.kind.case === "ack"), "the first ack");
    return { deploymentId: deployment.id, license, s };
  }

  /** The LOCKs the stream got, once it has ended (and a moment after, so a late second push would be seen). */
  async function locksOnceEnded(s: RawStream, deploymentId: string) {
    const err = await s.ended;
    expect(err && Code[err.code]).toBe("FailedPrecondition");
    await new Promise((r) => setTimeout(r, 200));
    const locks = s.responses.flatMap((r) => (r.kind.case === "directive" && r.kind.value.type === DirectiveType.LOCK ? [r.kind.value] : []));
    const stored = await h.sql<{ id: string }>(`select id from directive where deployment_id = '${deploymentId}' and type = 'LOCK'`);
    return { locks, stored };
  }

  it("revoke: one LOCK, the stored one, then the stream ends", async () => {
    const { deploymentId, license, s } = await streaming();
    await h.admin("support").revokeLicense({ licenseId: license.id, reason: "stolen from ward 3" });
    const { locks, stored } = await locksOnceEnded(s, deploymentId);
    expect(stored).toHaveLength(1);
    expect(locks.map((d) => d.id)).toEqual([stored[0]!.id]);
  });

  it("rebind: the old box gets one LOCK, the stored one, then its stream ends", async () => {
    const { deploymentId, license, s } = await streaming();
    await h.admin("support").rebindLicense({ licenseId: license.id, newFingerprint: "new-mainboard", reason: "mainboard replaced" });
    const { locks, stored } = await locksOnceEnded(s, deploymentId);
    expect(stored).toHaveLength(1);
    expect(locks.map((d) => d.id)).toEqual([stored[0]!.id]);
  });

  if (tdb.name === "postgresql") {
    it("revoke sent to another replica: the streaming box still gets one LOCK, the stored one", async () => {
      const b = await startReplica(h, { replicaId: "replica-b" });
      try {
        const { deploymentId, license, s } = await streaming(b.url);
        await h.admin("support").revokeLicense({ licenseId: license.id, reason: "decommissioned" });
        const { locks, stored } = await locksOnceEnded(s, deploymentId);
        expect(stored).toHaveLength(1);
        expect(locks.map((d) => d.id)).toEqual([stored[0]!.id]);
      } finally {
        await b.close();
      }
    });
  }
});
