import { ROLE_PERMISSIONS, type Permission, type Role } from "@lcp/domain";
import { POLICY } from "@lcp/rpc";
import { describe, expect, it } from "vitest";
import { parseEntitlements } from "../src/lib/format.js";
import { NAV_ITEMS } from "../src/lib/nav.js";
import { matchRoute, pathFor } from "../src/lib/router.js";

describe("the side navigation", () => {
  it("marks each screen with the permission the policy table demands of the RPC it opens with", () => {
    for (const item of NAV_ITEMS) {
      const rule = POLICY[item.procedure];
      expect(rule, item.procedure).toBeDefined();
      expect(rule && "permission" in rule ? rule.permission : null, item.label).toBe(item.permission);
    }
  });

  it("lists every screen of the product page once, each at a route the router matches", () => {
    expect(NAV_ITEMS.map((i) => i.label)).toEqual(["Licenses", "New license", "Offline", "Heartbeats", "Signing keys", "Settings", "Sweeps", "Audit"]);
    for (const item of NAV_ITEMS) expect(matchRoute(pathFor(item.route))).toEqual(item.route);
  });

  it("opens Offline to the roles that may issue licences, the permission of both file RPCs", () => {
    const offline = NAV_ITEMS.find((i) => i.label === "Offline");
    expect(offline).toMatchObject({ route: { name: "offline" }, permission: "license.issue" });
    for (const procedure of ["licensing.v1.LicensingService/RespondToActivation", "licensing.v1.LicensingService/RespondToRenewal"]) {
      const rule = POLICY[procedure];
      expect(rule && "permission" in rule ? rule.permission : null, procedure).toBe(offline!.permission);
    }
    const holders = (Object.keys(ROLE_PERMISSIONS) as Role[]).filter((r) => (ROLE_PERMISSIONS[r] as readonly Permission[]).includes("license.issue"));
    expect(holders.sort()).toEqual(["onboarding", "super_admin", "support"]);
  });
});

describe("entitlements as typed", () => {
  it("takes one per line or comma-separated, trimmed, without empties or repeats, order kept", () => {
    expect(parseEntitlements(" imaging\nmax-users:50, imaging\n\n,  reporting ")).toEqual(["imaging", "max-users:50", "reporting"]);
    expect(parseEntitlements("")).toEqual([]);
  });
});
