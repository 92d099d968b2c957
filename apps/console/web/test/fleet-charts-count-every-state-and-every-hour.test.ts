import { timestampMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { auditActionFor, HOUR_MS, transitionOf } from "@lcp/domain";
import { AuditService, type CountEventsRequest } from "@lcp/proto/audit/v1/audit_service_pb";
import { DeploymentState, LockReason } from "@lcp/proto/licensing/v1/types_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { barLength, countScale, shareText } from "../src/lib/chart.js";
import {
  actionTotals,
  fleetSegments,
  fleetSummaryText,
  floorToHour,
  hourlyBuckets,
  hourlySummaryText,
  hourWindow,
  STATE_CHANGE_ACTIONS,
  STATE_CHANGE_INFO,
  stateChangeCountRequest,
} from "../src/lib/fleet.js";
import { createConsoleTransport } from "../src/lib/transport.js";
import { startTestApi, type TestApi } from "./support.js";

describe("chart scales", () => {
  it("ends the count axis on a round step at or above the largest value", () => {
    expect(countScale(0)).toEqual({ max: 1, step: 1, ticks: [0, 1] });
    expect(countScale(3)).toEqual({ max: 3, step: 1, ticks: [0, 1, 2, 3] });
    expect(countScale(7)).toEqual({ max: 8, step: 2, ticks: [0, 2, 4, 6, 8] });
    expect(countScale(37)).toEqual({ max: 40, step: 10, ticks: [0, 10, 20, 30, 40] });
    expect(countScale(1_000_000).max).toBe(1_000_000);
    expect(countScale(1_000_001).ticks.length).toBeLessThanOrEqual(5);
    for (const bad of [NaN, -5, Infinity]) expect(countScale(bad).max, String(bad)).toBe(1);
  });

  it("never draws a bar past the axis, and never hides a non-zero one", () => {
    expect(barLength(50, 100, 400)).toBe(200);
    expect(barLength(1, 1_000_000, 400)).toBe(2);
    expect(barLength(0, 100, 400)).toBe(0);
    expect(barLength(150, 100, 400)).toBe(400);
    expect(barLength(-3, 100, 400)).toBe(0);
    expect(barLength(5, 0, 400)).toBe(0);
  });

  it("writes shares without claiming 0% or 100% for what is neither", () => {
    expect(shareText(1, 1000)).toBe("<1%");
    expect(shareText(999, 1000)).toBe(">99%");
    expect(shareText(1000, 1000)).toBe("100%");
    expect(shareText(45, 100)).toBe("45%");
    expect(shareText(0, 100)).toBe("0%");
    expect(shareText(3, 0)).toBe("0%");
  });
});

describe("the fleet by state", () => {
  it("shows every state of the states table, zeros included, with LOCKED split by its reason", () => {
    const segments = fleetSegments([
      { state: DeploymentState.ACTIVE, lockReason: LockReason.UNSPECIFIED, count: 120n },
      { state: DeploymentState.LOCKED, lockReason: LockReason.OFFLINE, count: 4n },
      { state: DeploymentState.LOCKED, lockReason: LockReason.REVOKED, count: 2n },
    ]);
    expect(segments.map((s) => [s.label, s.count])).toEqual([
      ["Active", 120],
      ["Grace", 0],
      ["Suspended", 0],
      ["Pending", 0],
      ["Locked (offline)", 4],
      ["Locked (expired)", 0],
      ["Locked (revoked)", 2],
    ]);
    expect(fleetSummaryText(segments, 126, "14:02")).toBe(
      "Deployments by state at 14:02: 126 in total; Active 120, Grace 0, Suspended 0, Pending 0, Locked (offline) 4, Locked (expired) 0, Locked (revoked) 2.",
    );
  });

  it("adds up repeated entries, drops a lock reason outside LOCKED, and keeps what this build does not know", () => {
    const segments = fleetSegments([
      { state: DeploymentState.GRACE, lockReason: LockReason.OFFLINE, count: 3n },
      { state: DeploymentState.GRACE, lockReason: LockReason.UNSPECIFIED, count: 2n },
      { state: DeploymentState.LOCKED, lockReason: LockReason.UNSPECIFIED, count: 1n },
      { state: 9 as DeploymentState, lockReason: LockReason.UNSPECIFIED, count: 5n },
      { state: DeploymentState.ACTIVE, lockReason: LockReason.UNSPECIFIED, count: -4n },
    ]);
    expect(segments.find((s) => s.label === "Grace")?.count).toBe(5);
    expect(segments.find((s) => s.label === "Active")?.count).toBe(0);
    expect(segments.slice(7).map((s) => [s.label, s.count])).toEqual([
      ["Locked (reason not given)", 1],
      ["Unknown (9)", 5],
    ]);
    expect(new Set(segments.map((s) => s.key)).size).toBe(segments.length);
  });
});

describe("state changes per hour", () => {
  it("counts exactly the actions the domain records for a change of derived state", () => {
    expect([...STATE_CHANGE_ACTIONS].sort()).toEqual(
      ["deployment.lock", "deployment.offline", "deployment.online", "deployment.reactivate", "deployment.suspend", "license.activate", "license.expire", "license.rebind"].sort(),
    );
    // A revocation is recorded on the deployment as deployment.lock; license.revoke is the command.
    expect(STATE_CHANGE_ACTIONS).not.toContain("license.revoke");
    expect(auditActionFor(transitionOf({ state: "ACTIVE", lockReason: null }, { state: "LOCKED", lockReason: "REVOKED" })!)).toBe("deployment.lock");
    for (const action of STATE_CHANGE_ACTIONS) expect(STATE_CHANGE_INFO[action], action).toBeDefined();
  });

  it("aligns the window to whole hours, ending with the current hour, whatever the minute", () => {
    const now = Date.UTC(2026, 2, 5, 14, 37, 12, 345);
    const w = hourWindow(now);
    expect(w.hours).toBe(24);
    expect(new Date(w.startMs).toISOString()).toBe("2026-03-04T15:00:00.000Z");
    expect(new Date(w.endMs).toISOString()).toBe("2026-03-05T15:00:00.000Z");
    expect((w.endMs - w.startMs) / HOUR_MS).toBe(24);
    // The same window all hour long (one cache entry), a new one on the hour.
    expect(hourWindow(Date.UTC(2026, 2, 5, 14, 0, 0, 0))).toEqual(w);
    expect(hourWindow(Date.UTC(2026, 2, 5, 14, 59, 59, 999))).toEqual(w);
    expect(hourWindow(Date.UTC(2026, 2, 5, 15, 0, 0, 0)).startMs).toBe(w.startMs + HOUR_MS);
    expect(floorToHour(now)).toBe(Date.UTC(2026, 2, 5, 14));
  });

  it("folds the answer into one bucket per hour, zeros included, and leaves out what was not asked for", () => {
    const now = Date.UTC(2026, 2, 5, 14, 37);
    const w = hourWindow(now);
    const hour = (i: number) => w.startMs + i * HOUR_MS;
    const buckets = hourlyBuckets(
      w,
      [
        { bucketStartMs: hour(0), action: "deployment.offline", count: 3n },
        { bucketStartMs: hour(0), action: "deployment.online", count: 1n },
        { bucketStartMs: hour(0) + 60_000, action: "deployment.offline", count: 2n },
        { bucketStartMs: hour(23), action: "deployment.lock", count: 1n },
        { bucketStartMs: hour(23), action: "license.revoke", count: 50n },
        { bucketStartMs: hour(24), action: "deployment.offline", count: 9n },
        { bucketStartMs: hour(-1), action: "deployment.offline", count: 9n },
        { bucketStartMs: NaN, action: "deployment.offline", count: 9n },
      ],
      now,
    );
    expect(buckets).toHaveLength(24);
    expect(buckets[0]).toMatchObject({ startMs: hour(0), left: 5, returned: 1, total: 6, partial: false, byAction: { "deployment.offline": 5, "deployment.online": 1 } });
    expect(buckets.slice(1, 23).every((b) => b.total === 0)).toBe(true);
    expect(buckets[23]).toMatchObject({ left: 1, returned: 0, total: 1, partial: true });
    expect(actionTotals(buckets)).toEqual([
      { action: "deployment.lock", count: 1 },
      { action: "deployment.offline", count: 5 },
      { action: "deployment.online", count: 1 },
    ]);
    const label = (ms: number) => new Date(ms).toISOString().slice(11, 16);
    expect(hourlySummaryText(buckets, label)).toBe(
      "State changes per hour over the last 24 hours: 7 in total, 6 out of service and 1 back into service; the busiest hour began at 15:00 with 6.",
    );
    expect(hourlySummaryText(hourlyBuckets(w, [], now), label)).toBe("No state changes in the last 24 hours.");
  });
});

describe("the CountEvents request", () => {
  let api: TestApi;
  let received: CountEventsRequest | null = null;
  beforeAll(async () => {
    api = await startTestApi((router) =>
      router.service(AuditService, {
        countEvents: (req) => {
          received = req;
          return { counts: [{ bucketStartTime: req.startTime, action: "deployment.offline", count: 2n }] };
        },
      }),
    );
  });
  afterAll(() => api.close());

  it("asks for the state-change actions on deployments, hour by hour, over the aligned window", async () => {
    const client = createClient(AuditService, createConsoleTransport({ baseUrl: api.baseUrl, csrfToken: () => "t", onUnauthenticated: () => {} }));
    const now = Date.UTC(2026, 2, 5, 14, 37, 12);
    const w = hourWindow(now);
    const res = await client.countEvents(stateChangeCountRequest(w));
    expect(received).not.toBeNull();
    const req = received!;
    expect([...req.actions].sort()).toEqual([...STATE_CHANGE_ACTIONS].sort());
    expect(req.actions.length).toBeLessThanOrEqual(32);
    expect(req.resourceType).toBe("deployment");
    expect(timestampMs(req.startTime!)).toBe(w.startMs);
    expect(timestampMs(req.endTime!)).toBe(w.endMs);
    expect(req.bucketWidth?.seconds).toBe(3600n);
    const buckets = hourlyBuckets(
      w,
      res.counts.map((c) => ({ bucketStartMs: timestampMs(c.bucketStartTime!), action: c.action, count: c.count })),
      now,
    );
    expect(buckets[0]?.left).toBe(2);
  });
});
