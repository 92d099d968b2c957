import { describe, expect, it } from "vitest";
import { controlPlaneFiles, controlPlaneServices } from "@lcp/proto";

describe("the contract index", () => {
  it("lists every service declared in the control-plane files", () => {
    const declared = controlPlaneFiles.flatMap((f) => f.services.map((s) => s.typeName)).sort();
    expect(controlPlaneServices.map((s) => s.typeName).sort()).toEqual(declared);
    expect(declared).toEqual([
      "audit.v1.AuditService",
      "fleet.v1.FleetSweepService",
      "licensing.v1.ApplianceService",
      "licensing.v1.LicensingService",
      "licensing.v1.ReconcileService",
      "ops.v1.OutboxService",
      "signing.v1.SigningKeyService",
    ]);
  });
});
