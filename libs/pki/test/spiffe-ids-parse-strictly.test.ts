import { describe, expect, it } from "vitest";
import { applianceSpiffeId, DEFAULT_TRUST_DOMAIN, parseSpiffeId, serviceSpiffeId } from "../src/index.js";

describe("SPIFFE ids", () => {
  it("builds service and appliance ids in the default trust domain", () => {
    expect(DEFAULT_TRUST_DOMAIN).toBe("lcp.local");
    expect(serviceSpiffeId("lcp.local", "signing-keys")).toBe("spiffe://lcp.local/service/signing-keys");
    expect(applianceSpiffeId("lcp.local", "0195f3c2-7b1e-7c3a-9d2f-1a2b3c4d5e6f")).toBe(
      "spiffe://lcp.local/appliance/0195f3c2-7b1e-7c3a-9d2f-1a2b3c4d5e6f",
    );
  });

  it("refuses to build ids from invalid parts", () => {
    expect(() => serviceSpiffeId("LCP.local", "audit")).toThrow(TypeError);
    expect(() => serviceSpiffeId("lcp.local", "a/b")).toThrow(TypeError);
    expect(() => applianceSpiffeId("lcp.local", "..")).toThrow(TypeError);
    expect(() => applianceSpiffeId("lcp.local", "")).toThrow(TypeError);
  });

  it("parses what it builds", () => {
    expect(parseSpiffeId("spiffe://lcp.local/service/audit")).toEqual({ trustDomain: "lcp.local", kind: "service", name: "audit" });
    expect(parseSpiffeId("spiffe://example.org/appliance/dep_1.A-2")).toEqual({
      trustDomain: "example.org",
      kind: "appliance",
      name: "dep_1.A-2",
    });
  });

  it.each([
    "",
    "spiffe://lcp.local",
    "spiffe://lcp.local/",
    "spiffe://lcp.local/service",
    "spiffe://lcp.local/service/",
    "spiffe://lcp.local/service/audit/",
    "spiffe://lcp.local/service/audit/extra",
    "spiffe://lcp.local//service/audit",
    "spiffe://lcp.local/admin/audit",
    "spiffe://LCP.local/service/audit",
    "SPIFFE://lcp.local/service/audit",
    "https://lcp.local/service/audit",
    "spiffe://lcp.local:443/service/audit",
    "spiffe://user@lcp.local/service/audit",
    "spiffe://lcp.local/service/audit?x=1",
    "spiffe://lcp.local/service/audit#frag",
    "spiffe://lcp.local/service/au%64it",
    "spiffe://lcp.local/service/..",
    "spiffe://lcp.local/service/.",
    "spiffe://lcp.local/service/a b",
    "spiffe://-lcp.local/service/audit",
    "spiffe://lcp..local/service/audit",
    "spiffe:///service/audit",
    " spiffe://lcp.local/service/audit",
    "spiffe://lcp.local/service/audit\n",
    `spiffe://lcp.local/appliance/${"a".repeat(256)}`,
  ])("rejects %j", (uri) => {
    expect(parseSpiffeId(uri)).toBeNull();
  });

  it("rejects non-strings without throwing", () => {
    expect(parseSpiffeId(undefined as unknown as string)).toBeNull();
  });
});
