/**
 * Which Connect procedures the browser may call through the console, and which service owns
 * each. Built from the contracts' descriptors: a method is routed when its service is one the
 * console fronts, it is unary, and the system policy grants it to admins (a permission) or to
 * anyone. Methods reserved for services or appliances (Append, Sign, IssueApplianceCertificate,
 * GetApplianceTrustBundle, Reconcile…, the appliance RPCs) are never reachable from a browser,
 * whatever credentials it holds. The services still decide who may call what.
 */
import type { DescService } from "@bufbuild/protobuf";
import { AuditService, FleetSweepService, LicensingService, OutboxService, SigningKeyService } from "@lcp/proto";
import { POLICY, procedureOf } from "@lcp/rpc";
import type { UpstreamUrls } from "./config.js";

/** The services the console fronts, each with the upstream that serves it. */
export const FRONTED_SERVICES: ReadonlyArray<{ readonly service: DescService; readonly upstream: keyof UpstreamUrls }> = [
  { service: LicensingService, upstream: "licensing" },
  { service: SigningKeyService, upstream: "signingKeys" },
  { service: AuditService, upstream: "audit" },
  { service: FleetSweepService, upstream: "fleetSweep" },
  // Each relaying service serves its own outbox; the console shows licensing's.
  { service: OutboxService, upstream: "licensing" },
];

/** Whether the policy lets an admin (or anyone) call a procedure: only those are browser-facing. */
function isBrowserFacing(procedure: string): boolean {
  const rule = Object.hasOwn(POLICY, procedure) ? POLICY[procedure] : undefined;
  return rule !== undefined && ("permission" in rule || "public" in rule);
}

/** `"pkg.Service/Method"` → the upstream that serves it, for every routed procedure. */
export function apiRoutes(): ReadonlyMap<string, keyof UpstreamUrls> {
  const routes = new Map<string, keyof UpstreamUrls>();
  for (const { service, upstream } of FRONTED_SERVICES) {
    for (const method of service.methods) {
      const procedure = procedureOf(method);
      if (method.methodKind === "unary" && isBrowserFacing(procedure)) routes.set(procedure, upstream);
    }
  }
  return routes;
}
