/**
 * GetFleetSummary counts the whole fleet by the state derived now (lock reason included), in SQL:
 * a fleet in every state — GRACE and LOCKED(OFFLINE) reached by time alone, never written — counts
 * what ListDeployments shows, and moving the clock moves the counts without a single write.
 * Read roles may ask; a token without license.read may not.
 */
import { Code } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { GetFleetSummaryResponse } from "@lcp/proto/licensing/v1/licensing_service_pb";
import { DeploymentKind, DeploymentState, LockReason, SubscriptionStatus } from "@lcp/proto/licensing/v1/types_pb";
import { testDatabases } from "@lcp/testing/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { activateBox, expectRefusal, newBox, provisionOnPrem, snapshot, startHarness, type LicensingHarness } from "./support.js";

const MINUTE = 60_000;
const DAY = 86_400_000;

/** The counts as `STATE[:REASON] → n`. */
function countsOf(res: GetFleetSummaryResponse): Record<string, number> {
  return Object.fromEntries(
    res.counts.map((c) => [c.lockReason === LockReason.UNSPECIFIED ? DeploymentState[c.state] : `${DeploymentState[c.state]}:${LockReason[c.lockReason]}`, Number(c.count)]),
  );
}

describe.each(testDatabases())("GetFleetSummary ($name)", (tdb) => {
  let h: LicensingHarness;
  beforeAll(async () => {
    h = await startHarness(tdb);
  });
  afterAll(async () => {
    await h?.close();
  });

  /** Runs `fn` with the licensing clock moved by `ms`, and puts it back. */
  async function at<T>(ms: number, fn: () => Promise<T>): Promise<T> {
    h.clock.advance(ms);
    try {
      return await fn();
    } finally {
      h.clock.advance(-ms);
    }
  }

  async function activated() {
    const { deployment, license } = await provisionOnPrem(h);
    await activateBox(h, license, await newBox(h, deployment.id));
    return { deployment, license };
  }

  it("counts a fleet in every state, moves with the clock alone, and matches the lists", async () => {
    const support = h.admin("support");
    const reader = h.admin("auditor");
    expect(countsOf(await reader.getFleetSummary({}))).toEqual({});
    expect((await reader.getFleetSummary({})).total).toBe(0n);

    // Last seen 15 days ago (past the 14 d grace window) and 10 minutes ago (past the 5 min timeout).
    await at(-15 * DAY, activated);
    await at(-10 * MINUTE, activated);
    // A licence whose one-day term ended two days ago.
    await at(-3 * DAY, () => support.provisionDeployment({ name: "expired", customer: "c", kind: DeploymentKind.ON_PREM, term: { seconds: 86_400n, nanos: 0 } }));
    await activated();
    await activated();
    const suspended = await activated();
    await support.setSubscriptionStatus({ deploymentId: suspended.deployment.id, status: SubscriptionStatus.INVALID, reason: "unpaid" });
    const revokedActive = await activated();
    await support.revokeLicense({ licenseId: revokedActive.license.id, reason: "contract ended" });
    const revokedPending = await provisionOnPrem(h);
    await support.revokeLicense({ licenseId: revokedPending.license.id, reason: "never shipped" });
    await provisionOnPrem(h);
    await support.provisionDeployment({ name: "cloud", customer: "c", kind: DeploymentKind.CLOUD });

    const before = await snapshot(h);
    const t0 = h.clock.now().getTime();
    const now = await reader.getFleetSummary({});
    expect(countsOf(now)).toEqual({
      PENDING: 2,
      ACTIVE: 2,
      GRACE: 1,
      SUSPENDED: 1,
      "LOCKED:OFFLINE": 1,
      "LOCKED:EXPIRED": 1,
      "LOCKED:REVOKED": 2,
    });
    expect(now.total).toBe(10n);
    expect(Math.abs(timestampDate(now.countTime!).getTime() - t0)).toBeLessThan(5_000);

    // The same states the list derives, one by one.
    const listed: Record<string, number> = {};
    for (const d of (await reader.listDeployments({ pageSize: 500 })).deployments) {
      const key = d.lockReason === LockReason.UNSPECIFIED ? DeploymentState[d.state] : `${DeploymentState[d.state]}:${LockReason[d.lockReason]}`;
      listed[key] = (listed[key] ?? 0) + 1;
    }
    expect(listed).toEqual(countsOf(now));

    // Six minutes on, with no write in between: the two ACTIVE boxes are in GRACE (SUSPENDED
    // outranks GRACE); fifteen days on, everyone activated and not locked otherwise is OFFLINE.
    const later = await at(6 * MINUTE, () => reader.getFleetSummary({}));
    expect(countsOf(later)).toEqual({ PENDING: 2, GRACE: 3, SUSPENDED: 1, "LOCKED:OFFLINE": 1, "LOCKED:EXPIRED": 1, "LOCKED:REVOKED": 2 });
    const muchLater = await at(15 * DAY, () => reader.getFleetSummary({}));
    expect(countsOf(muchLater)).toEqual({ PENDING: 2, "LOCKED:OFFLINE": 5, "LOCKED:EXPIRED": 1, "LOCKED:REVOKED": 2 });
    expect(muchLater.total).toBe(10n);
    expect(await snapshot(h)).toEqual(before);
  });

  it("answers every read role and refuses a token without license.read", async () => {
    for (const role of ["onboarding", "support", "super_admin", "auditor"]) {
      expect((await h.admin(role).getFleetSummary({})).total, role).toBeGreaterThanOrEqual(0n);
    }
    await expectRefusal(h.admin("no-such-role").getFleetSummary({}), Code.PermissionDenied);
  });
});
