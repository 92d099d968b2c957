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
    expect(NAV_ITEMS.map((i) => i.label)).toEqual(["Licenses", "New license", "Heartbeats", "Signing keys", "Settings", "Sweeps", "Audit"]);
    for (const item of NAV_ITEMS) expect(matchRoute(pathFor(item.route))).toEqual(item.route);
  });
});

describe("entitlements as typed", () => {
  it("takes one per line or comma-separated, trimmed, without empties or repeats, order kept", () => {
    expect(parseEntitlements(" imaging\nmax-users:50, imaging\n\n,  reporting ")).toEqual(["imaging", "max-users:50", "reporting"]);
    expect(parseEntitlements("")).toEqual([]);
  });
});
