/**
 * The ApplianceService implementation. Activate is here; Heartbeat and SendHeartbeat are the
 * heartbeat module's (heartbeat/appliance-handlers.ts), merged with these in app.ts.
 */
import type { ServiceImpl } from "@connectrpc/connect";
import type { ApplianceService } from "@lcp/proto/licensing/v1/appliance_service_pb";
import { callContextOf } from "../core/audit.js";
import { auditRefusals, type LicensingDeps } from "../deps.js";
import { activateLicense } from "./activate.js";
import { fingerprintHash } from "../validation.js";

/**
 * Builds the ApplianceService handlers: every RPC but the heartbeat module's two, so the two
 * merged are the whole service and an RPC added to the contract without a handler does not compile.
 */
export function createApplianceService(deps: LicensingDeps): Omit<ServiceImpl<typeof ApplianceService>, "heartbeat" | "sendHeartbeat"> {
  return {
    async activate(req, ctx) {
      const call = callContextOf(ctx);
      return auditRefusals(
        deps,
        call,
        () => ({
          action: "license.activate",
          resource: { type: "license", id: req.licenseId.slice(0, 64) },
          // The hash, never the raw fingerprint; bounded so a 10 kB fingerprint costs nothing in the trail.
          details: req.fingerprint ? { fingerprintHash: fingerprintHash(req.fingerprint) } : {},
        }),
        () => activateLicense(deps, call, req),
      );
    },
  };
}
