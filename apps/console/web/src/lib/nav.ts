/**
 * The side navigation: each screen and the permission it needs, which is the permission of the
 * RPC the screen opens with (a test holds each against the policy table of libs/rpc).
 */
import type { Permission } from "@lcp/domain";
import type { Route } from "./router.js";

/** One navigation entry. */
export interface NavItem {
  readonly label: string;
  readonly route: Exclude<Route, { name: "not-found" | "deployment" }>;
  readonly permission: Permission;
  /** The RPC (`pkg.Service/Method`) the screen needs first; its policy names the permission. */
  readonly procedure: string;
}

/** The side navigation, in the order of the product page. */
export const NAV_ITEMS: readonly NavItem[] = [
  { label: "Licenses", route: { name: "licenses" }, permission: "license.read", procedure: "licensing.v1.LicensingService/ListLicenses" },
  { label: "New license", route: { name: "license-new" }, permission: "license.issue", procedure: "licensing.v1.LicensingService/IssueLicense" },
  { label: "Offline", route: { name: "offline" }, permission: "license.issue", procedure: "licensing.v1.LicensingService/RespondToActivation" },
  { label: "Heartbeats", route: { name: "heartbeats" }, permission: "heartbeat.read", procedure: "licensing.v1.LicensingService/ListHeartbeats" },
  { label: "Signing keys", route: { name: "signing" }, permission: "signing.manage", procedure: "signing.v1.SigningKeyService/ListKeys" },
  { label: "Settings", route: { name: "settings" }, permission: "license.read", procedure: "licensing.v1.LicensingService/GetSettings" },
  { label: "Sweeps", route: { name: "sweeps" }, permission: "fleet.sweep", procedure: "fleet.v1.FleetSweepService/ListSweeps" },
  { label: "Audit", route: { name: "audit" }, permission: "audit.read", procedure: "audit.v1.AuditService/ListEvents" },
];
