import { SweepStatus, SweepTrigger } from "@lcp/proto/fleet/v1/fleet_sweep_service_pb";
import { DeploymentState, LockReason } from "@lcp/proto/licensing/v1/types_pb";
import { describe, expect, it } from "vitest";
import { labelOf } from "../src/lib/format.js";
import { runKindText, SWEEP_STATUS_LABELS, SWEEP_TRIGGER_LABELS, transitionText, transitionTotal } from "../src/lib/sweep.js";

describe("a sweep report in words", () => {
  it("names each transition from → to, the lock reason qualifying the new state only", () => {
    expect(transitionText(DeploymentState.ACTIVE, DeploymentState.GRACE, LockReason.UNSPECIFIED)).toBe("Active → Grace");
    expect(transitionText(DeploymentState.GRACE, DeploymentState.LOCKED, LockReason.OFFLINE)).toBe("Grace → Locked (offline)");
    expect(transitionText(DeploymentState.LOCKED, DeploymentState.ACTIVE, LockReason.OFFLINE)).toBe("Locked → Active");
    expect(transitionText(DeploymentState.ACTIVE, 9 as DeploymentState, LockReason.UNSPECIFIED)).toBe("Active → Unknown (9)");
  });

  it("adds up the transition counts, bigints included", () => {
    expect(transitionTotal([{ count: 3n }, { count: 4n }, { count: 0n }])).toBe(7);
    expect(transitionTotal([])).toBe(0);
  });

  it("tells a dry run from a sweep, and every status and trigger", () => {
    expect(runKindText(true)).toBe("Dry run");
    expect(runKindText(false)).toBe("Sweep");
    expect(labelOf(SWEEP_STATUS_LABELS, SweepStatus.FAILED)).toBe("Failed");
    expect(labelOf(SWEEP_TRIGGER_LABELS, SweepTrigger.SCHEDULED)).toBe("Scheduled");
    expect(labelOf(SWEEP_STATUS_LABELS, 7 as SweepStatus)).toBe("Unknown (7)");
  });
});
