import { describe, expect, it } from "vitest";
import { loginUrl, parseSession, permissionReason, rolesGranting, safeRedirect } from "../src/lib/session.js";

const good = { subject: "u1", name: "Alice", roles: ["support"], permissions: ["license.read"], csrfToken: "c", expiresAt: "2030-01-01T00:00:00Z" };

describe("the session and its redirects", () => {
  it("keeps the page (path and query) the operator was on when sending them to sign in", () => {
    expect(loginUrl({ pathname: "/licensing/audit", search: "?action=license.revoke&x=1" })).toBe(
      "/auth/login?return=%2Flicensing%2Faudit%3Faction%3Dlicense.revoke%26x%3D1",
    );
  });

  it("follows a sign-out redirect only to a same-origin path or an http(s) URL", () => {
    expect(safeRedirect("/auth/bye")).toBe("/auth/bye");
    expect(safeRedirect("https://idp.example/logout?x=1")).toBe("https://idp.example/logout?x=1");
    for (const bad of ["javascript:alert(1)", "//evil.example/", "/\\evil.example", "data:text/html,x", 42, null, "x".repeat(5000)]) {
      expect(safeRedirect(bad), String(bad).slice(0, 40)).toBe("/");
    }
  });

  it("accepts a well-formed session and refuses malformed or oversized ones", () => {
    expect(parseSession(good)).toEqual(good);
    expect(parseSession({ ...good, name: "" })?.name).toBe("u1");
    expect(parseSession({ ...good, csrfToken: "" })).toBeNull();
    expect(parseSession({ ...good, roles: "support" })).toBeNull();
    expect(parseSession({ ...good, permissions: [1] })).toBeNull();
    expect(parseSession({ ...good, subject: "s".repeat(10_000) })).toBeNull();
    expect(parseSession({ ...good, roles: Array.from({ length: 1000 }, () => "r") })).toBeNull();
    expect(parseSession(null)).toBeNull();
    expect(parseSession("session")).toBeNull();
  });

  it("says which permission and which roles an unavailable action needs, from the one roles table", () => {
    expect(permissionReason("signing.manage")).toBe("needs signing.manage (super_admin)");
    expect(permissionReason("license.revoke")).toBe("needs license.revoke (support, super_admin)");
    expect(rolesGranting("audit.read")).toEqual(["support", "super_admin", "auditor"]);
  });
});
