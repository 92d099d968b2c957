/**
 * The LicensingService implementation: thin handlers over validate.ts and one file per RPC or
 * area. Who may call what was decided before a handler runs (the policy table in libs/rpc).
 * Mutations record every refusal with outcome DENIED. ListHeartbeats and SendDirective are the
 * heartbeat module's (heartbeat/operator-handlers.ts), merged with these in app.ts.
 */
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { LicensingService } from "@lcp/proto/licensing/v1/licensing_service_pb";
import { principalKey } from "@lcp/rpc";
import { callContextOf } from "../core/audit.js";
import { auditRefusals, type LicensingDeps } from "../deps.js";
import type { HeartbeatStatusReader } from "../heartbeat/status.js";
import { heartbeatVisibleTo, licenseViewOf } from "../mapping.js";
import { setConnectivity } from "./connectivity.js";
import { getFleetSummary } from "./fleet-summary.js";
import { issueLicenseFor } from "./issue.js";
import { provisionDeployment } from "./provision.js";
import { getDeployment, getLicense, listDeployments, listLicenses } from "./queries.js";
import { rebindLicense } from "./rebind.js";
import { revokeLicense } from "./revoke.js";
import { respondToActivation, respondToRenewal } from "../offline/respond.js";
import { getSettings, updateSettings } from "./settings.js";
import { setSubscriptionStatus } from "./subscription.js";

const viewOf = (ctx: HandlerContext) => licenseViewOf(ctx.values.get(principalKey));

/** What the LicensingService handlers read from other modules. */
export interface LicensingServiceOptions {
  /** Heartbeat statuses (GetDeployment's `heartbeat`); without one, GetDeployment shows none. */
  heartbeats?: HeartbeatStatusReader | undefined;
}

/**
 * Builds the LicensingService handlers: every RPC but the heartbeat module's two (ListHeartbeats,
 * SendDirective) and the offline module's two (RespondToActivation, RespondToRenewal), so those
 * merged are the whole service and an RPC added to the contract without a handler does not compile.
 */
export function createLicensingService(
  deps: LicensingDeps,
  options: LicensingServiceOptions = {},
): Omit<ServiceImpl<typeof LicensingService>, "listHeartbeats" | "sendDirective"> {
  return {
    // Read-only roles get licences without token and fingerprint hash (mapping.ts licenseViewOf).
    listLicenses: (req, ctx) => listLicenses(deps, req, viewOf(ctx)),
    getLicense: (req, ctx) => getLicense(deps, req, viewOf(ctx)),
    listDeployments: (req) => listDeployments(deps, req),
    // The licence and certificate redacted like GetLicense; the heartbeat only for heartbeat.read.
    getDeployment: (req, ctx) => {
      const principal = ctx.values.get(principalKey);
      return getDeployment(deps, req, {
        license: licenseViewOf(principal),
        heartbeats: heartbeatVisibleTo(principal) ? (options.heartbeats ?? null) : null,
      });
    },
    getSettings: () => getSettings(deps),
    // Air-gapped boxes' files (offline/respond.ts audits their refusals itself: the licence they
    // name is read from the file).
    respondToActivation: (req, ctx) => respondToActivation(deps, callContextOf(ctx), req),
    respondToRenewal: (req, ctx) => respondToRenewal(deps, callContextOf(ctx), req),
    getFleetSummary: () => getFleetSummary(deps),

    async provisionDeployment(req, ctx) {
      const call = callContextOf(ctx);
      return auditRefusals(deps, call, { action: "deployment.provision", resource: { type: "deployment", id: "-" }, details: { name: req.name, customer: req.customer } }, () =>
        provisionDeployment(deps, call, req, viewOf(ctx)),
      );
    },
    async issueLicense(req, ctx) {
      const call = callContextOf(ctx);
      return auditRefusals(deps, call, { action: "license.issue", resource: { type: "deployment", id: req.deploymentId } }, () =>
        issueLicenseFor(deps, call, req, viewOf(ctx)),
      );
    },
    async revokeLicense(req, ctx) {
      const call = callContextOf(ctx);
      return auditRefusals(deps, call, { action: "license.revoke", resource: { type: "license", id: req.licenseId }, details: { reason: req.reason } }, () =>
        revokeLicense(deps, call, req, viewOf(ctx)),
      );
    },
    async rebindLicense(req, ctx) {
      const call = callContextOf(ctx);
      return auditRefusals(deps, call, { action: "license.rebind", resource: { type: "license", id: req.licenseId }, details: { reason: req.reason } }, () =>
        rebindLicense(deps, call, req, viewOf(ctx)),
      );
    },
    async setConnectivity(req, ctx) {
      const call = callContextOf(ctx);
      return auditRefusals(
        deps,
        call,
        { action: "deployment.connectivity", resource: { type: "deployment", id: req.deploymentId }, details: { reason: req.reason } },
        () => setConnectivity(deps, call, req),
      );
    },
    async setSubscriptionStatus(req, ctx) {
      const call = callContextOf(ctx);
      return auditRefusals(deps, call, { action: "subscription.update", resource: { type: "deployment", id: req.deploymentId } }, () =>
        setSubscriptionStatus(deps, call, req),
      );
    },
    async updateSettings(req, ctx) {
      const call = callContextOf(ctx);
      return auditRefusals(deps, call, { action: "settings.update", resource: { type: "settings", id: "1" } }, () =>
        updateSettings(deps, call, req),
      );
    },
  };
}
