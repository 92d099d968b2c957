/**
 * The change signal is "look now", never the only way a held stream learns of a change: with the
 * publisher losing every signal (as NOTIFYs are lost while a LISTEN connection reconnects), the
 * stream hub's periodic batched check (deployment versions and unacknowledged directive ids, no
 * per-stream re-read) still brings a directive sent meanwhile to the box, and a revoke still locks
 * it — within the check period.
 */
import { Code } from "@connectrpc/connect";
import { DirectiveType } from "@lcp/proto/licensing/v1/types_pb";
import { testDatabases } from "@lcp/testing/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { beat, helloOf, rawStream, until } from "./heartbeat-support.js";
import { activateBox, newBox, provisionOnPrem, startHarness, type LicensingHarness } from "./support.js";

const CHECK_MS = 300;

describe.each(testDatabases())("lost change signals ($name)", (tdb) => {
  let h: LicensingHarness;
  beforeAll(async () => {
    // Every committed change's signal is dropped: only the periodic check can tell the streams.
    h = await startHarness(tdb, { directivePublisher: { publish: async () => false }, heartbeatStaleCheckMs: CHECK_MS });
  });
  afterAll(async () => {
    await h?.close();
  });

  async function streaming() {
    const { deployment, license } = await provisionOnPrem(h);
    const box = await newBox(h, deployment.id);
    await activateBox(h, license, box);
    const s = rawStream(h, box);
    s.send(helloOf(license, box));
    s.send(beat(1n));
    await until(() => s.responses.some((r) => r.kind.case === "ack"), "the first ack");
    return { deployment, license, box, s };
  }

  it("a directive sent while its signal is lost reaches the stream at the next check", async () => {
    const { deployment, s } = await streaming();
    const sent = await h.admin("support").sendDirective({ deploymentId: deployment.id, type: DirectiveType.REFRESH_KEYS, reason: "rotation" });
    await until(() => s.responses.some((r) => r.kind.case === "directive" && r.kind.value.id === sent.directive!.id), "the directive", CHECK_MS * 10);
    // Sent once: later checks see it was delivered and do not push it again.
    await new Promise((r) => setTimeout(r, CHECK_MS * 3));
    expect(s.responses.filter((r) => r.kind.case === "directive" && r.kind.value.id === sent.directive!.id)).toHaveLength(1);
    s.end();
    expect(await s.ended).toBeUndefined();
  });

  it("a revoke whose signal is lost locks the box at the next check", async () => {
    const { license, s } = await streaming();
    await h.admin("support").revokeLicense({ licenseId: license.id, reason: "stolen" });
    const err = await s.ended;
    expect(err && Code[err.code]).toBe("FailedPrecondition");
    expect(s.responses.some((r) => r.kind.case === "directive" && r.kind.value.type === DirectiveType.LOCK)).toBe(true);
  });
});
