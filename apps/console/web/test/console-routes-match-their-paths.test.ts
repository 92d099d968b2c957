import { describe, expect, it } from "vitest";
import { deploymentPath, matchRoute, pathFor } from "../src/lib/router.js";

describe("console routes", () => {
  it("matches every screen the product page names", () => {
    expect(matchRoute("/licensing")).toEqual({ name: "licenses" });
    expect(matchRoute("/licensing/")).toEqual({ name: "licenses" });
    expect(matchRoute("/licensing/license-new")).toEqual({ name: "license-new" });
    expect(matchRoute("/licensing/offline")).toEqual({ name: "offline" });
    expect(matchRoute("/licensing/offline/")).toEqual({ name: "offline" });
    expect(matchRoute("/licensing/signing")).toEqual({ name: "signing" });
    expect(matchRoute("/licensing/heartbeats/")).toEqual({ name: "heartbeats" });
    expect(matchRoute("/licensing/settings")).toEqual({ name: "settings" });
    expect(matchRoute("/licensing/sweeps")).toEqual({ name: "sweeps" });
    expect(matchRoute("/licensing/audit")).toEqual({ name: "audit" });
    expect(matchRoute("/licensing/deployments/0190a5d0-0000-7000-8000-000000000001")).toEqual({
      name: "deployment",
      id: "0190a5d0-0000-7000-8000-000000000001",
    });
  });

  it("answers not-found for anything else, bad encodings and other prefixes included", () => {
    for (const path of ["/", "/licensingx", "/licensing/nope", "/licensing/offline/x", "/licensing/Offline", "/licensing/deployments", "/licensing/deployments/a/b", "/licensing/deployments/%E0%A4%A", `/licensing/deployments/${"a".repeat(200)}`]) {
      expect(matchRoute(path).name, path).toBe("not-found");
    }
  });

  it("builds the paths it matches, encoding ids", () => {
    for (const name of ["licenses", "license-new", "offline", "signing", "heartbeats", "settings", "sweeps", "audit"] as const) {
      expect(matchRoute(pathFor({ name }))).toEqual({ name });
    }
    expect(deploymentPath("a b/c")).toBe("/licensing/deployments/a%20b%2Fc");
    expect(matchRoute(deploymentPath("a b/c"))).toEqual({ name: "deployment", id: "a b/c" });
  });
});
