import { describe, expect, it } from "vitest";
import { create, createRegistry, type DescMethod } from "@bufbuild/protobuf";
import { file_audit_v1_audit_service } from "@lcp/proto/audit/v1/audit_service_pb";
import { FleetSweepService } from "@lcp/proto/fleet/v1/fleet_sweep_service_pb";
import { HttpRuleSchema } from "@lcp/proto/google/api/http_pb";
import { ApplianceService } from "@lcp/proto/licensing/v1/appliance_service_pb";
import { file_licensing_v1_licensing_service, LicensingService } from "@lcp/proto/licensing/v1/licensing_service_pb";
import { DeploymentState, LicenseStatus } from "@lcp/proto/licensing/v1/types_pb";
import { SigningKeyService } from "@lcp/proto/signing/v1/signing_key_service_pb";
import { AuditService } from "@lcp/proto/audit/v1/audit_service_pb";
import { compileHttpRoutes, compileRule, createRouteTable, HttpRuleError, requestFor, type HttpMatch, type HttpRoutes } from "../src/http-rules.js";

const registry = createRegistry(file_licensing_v1_licensing_service, file_audit_v1_audit_service);
const all = compileHttpRoutes([LicensingService, ApplianceService, FleetSweepService, SigningKeyService, AuditService]);

function matched(table: HttpRoutes, method: string, path: string): HttpMatch {
  const m = table.match(method, path);
  if (!m || "allow" in m) throw new Error(`no route for ${method} ${path}`);
  return m;
}
const nameOf = (table: HttpRoutes, method: string, path: string) => matched(table, method, path).route.method.name;
const rule = (method: DescMethod, pattern: { case: "get" | "post" | "patch"; value: string }, body = "") =>
  compileRule(method, create(HttpRuleSchema, { pattern, body }));
const refusal = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    if (err instanceof HttpRuleError) return err.message;
    throw err;
  }
  throw new Error("expected an HttpRuleError");
};

describe("the contracts' HTTP rules", () => {
  it("route the seven product page paths to their RPCs", () => {
    expect(nameOf(all, "GET", "/licenses")).toBe("ListLicenses");
    expect(nameOf(all, "POST", "/licenses")).toBe("IssueLicense");
    expect(nameOf(all, "POST", "/licenses/lic-1/activate")).toBe("Activate");
    expect(nameOf(all, "POST", "/licenses/lic-1/heartbeat")).toBe("SendHeartbeat");
    expect(nameOf(all, "POST", "/licenses/lic-1/revoke")).toBe("RevokeLicense");
    expect(nameOf(all, "POST", "/licenses/lic-1/rebind")).toBe("RebindLicense");
    expect(nameOf(all, "POST", "/licenses/health/sweep")).toBe("Sweep");
    expect(nameOf(all, "POST", "/signing/keys:rotate")).toBe("RotateKeys");
    expect(nameOf(all, "POST", "/signing/keys/k1:retire")).toBe("RetireKey");
    expect(nameOf(all, "GET", "/licenses/health")).toBe("GetLicense");
  });

  it("give internal RPCs and streams no path", () => {
    const named = new Set(all.routes.map((r) => r.method.name));
    for (const internal of ["Sign", "IssueApplianceCertificate", "GetApplianceTrustBundle", "Append", "Heartbeat"]) expect(named.has(internal)).toBe(false);
  });

  it("let a literal segment win over a variable, whatever the order of the rules", () => {
    const sweep = rule(FleetSweepService.method.sweep, { case: "post", value: "/licenses/health/sweep" }, "*");
    const byId = rule(LicensingService.method.revokeLicense, { case: "post", value: "/licenses/{license_id}/sweep" }, "*");
    for (const table of [createRouteTable([sweep, byId]), createRouteTable([byId, sweep])]) {
      expect(nameOf(table, "POST", "/licenses/health/sweep")).toBe("Sweep");
      expect(nameOf(table, "POST", "/licenses/lic-1/sweep")).toBe("RevokeLicense");
    }
  });

  it("answer another HTTP method with the methods the path allows, and an unknown path with nothing", () => {
    expect(all.match("DELETE", "/licenses")).toEqual({ allow: ["GET", "POST"] });
    expect(all.match("GET", "/nothing/here")).toBeUndefined();
    expect(all.match("GET", "/licenses/")).toBeUndefined();
    expect(all.match("GET", `/licenses/${"x".repeat(5_000)}`)).toBeUndefined();
  });

  it("refuse malformed templates, unknown fields and rules on streams at start", () => {
    expect(() => rule(LicensingService.method.getLicense, { case: "get", value: "licenses" })).toThrow(/must start with/);
    expect(() => rule(LicensingService.method.getLicense, { case: "get", value: "/licenses/{nope}" })).toThrow(/not a singular scalar field/);
    expect(() => rule(LicensingService.method.getLicense, { case: "get", value: "/licenses/{license_id" })).toThrow(/unbalanced/);
    expect(() => rule(LicensingService.method.getLicense, { case: "get", value: "/a/**/b" })).toThrow(/last segment/);
    expect(() => rule(LicensingService.method.getLicense, { case: "get", value: "/licenses" }, "*")).toThrow(/cannot take a body/);
    expect(() => rule(ApplianceService.method.heartbeat, { case: "post", value: "/hb" }, "*")).toThrow(/unary/);
  });
});

describe("an HTTP request becomes the request message", () => {
  it("fills path variables, percent-decoded", () => {
    const req = requestFor(matched(all, "GET", "/licenses/lic%201"), { query: "", body: undefined }, registry);
    expect(req).toMatchObject({ licenseId: "lic 1" });
  });

  it("fills repeated enums by name and number, integers and strings from the query (proto or JSON names)", () => {
    const req = requestFor(
      matched(all, "GET", "/licenses"),
      { query: "statuses=LICENSE_STATUS_ACTIVATED&statuses=3&deploymentStates=DEPLOYMENT_STATE_GRACE&page_size=10&customer=ACME%20Corp", body: undefined },
      registry,
    );
    expect(req).toMatchObject({
      statuses: [LicenseStatus.ACTIVATED, 3],
      deploymentStates: [DeploymentState.GRACE],
      pageSize: 10,
      customer: "ACME Corp",
    });
  });

  it("reads timestamps and durations from the query", () => {
    const req = requestFor(matched(all, "GET", "/audit/events:count"), { query: "start_time=2026-01-01T00:00:00Z&bucket_width=3600s&actions=license.issue", body: undefined }, registry);
    expect(req).toMatchObject({ startTime: { seconds: 1767225600n }, bucketWidth: { seconds: 3600n }, actions: ["license.issue"] });
  });

  it("puts a field body in its field and the rest of the query beside it", () => {
    const req = requestFor(matched(all, "PATCH", "/settings"), { query: "update_mask=graceWindow&expected_version=7", body: { graceWindow: "86400s" } }, registry);
    expect(req).toMatchObject({ settings: { graceWindow: { seconds: 86400n } }, updateMask: { paths: ["grace_window"] }, expectedVersion: 7n });
  });

  it("fills nested fields from a {a.b} variable, a {field=pattern/*} variable and a.b query parameters", () => {
    const nested = createRouteTable([rule(LicensingService.method.updateSettings, { case: "get", value: "/settings/{settings.version}" })]);
    expect(requestFor(matched(nested, "GET", "/settings/12"), { query: "settings.grace_window=60s", body: undefined }, registry)).toMatchObject({
      settings: { version: 12n, graceWindow: { seconds: 60n } },
    });
    const named = createRouteTable([rule(LicensingService.method.getLicense, { case: "get", value: "/v1/{license_id=tenants/*/licenses/*}" })]);
    expect(requestFor(matched(named, "GET", "/v1/tenants/t1/licenses/l%2F2"), { query: "", body: undefined }, registry)).toMatchObject({ licenseId: "tenants/t1/licenses/l/2" });
    expect(named.match("GET", "/v1/tenants/t1/other/l2")).toBeUndefined();
  });

  it("lets the path win over the same field in a body *", () => {
    const req = requestFor(matched(all, "POST", "/licenses/lic-1/revoke"), { query: "", body: { licenseId: "lic-2", reason: "stolen" } }, registry);
    expect(req).toMatchObject({ licenseId: "lic-1", reason: "stolen" });
  });

  it("refuses unknown, bound or doubled query parameters, naming them", () => {
    const list = matched(all, "GET", "/licenses");
    expect(refusal(() => requestFor(list, { query: "nope=1", body: undefined }, registry))).toMatch(/unknown query parameter "nope"/);
    expect(refusal(() => requestFor(list, { query: "page_size=1&page_size=2", body: undefined }, registry))).toMatch(/more than once/);
    expect(refusal(() => requestFor(matched(all, "GET", "/licenses/l1"), { query: "license_id=l2", body: undefined }, registry))).toMatch(/unknown query parameter/);
    expect(refusal(() => requestFor(matched(all, "POST", "/licenses/l1/revoke"), { query: "reason=x", body: undefined }, registry))).toMatch(/unknown query parameter/);
    expect(refusal(() => requestFor(matched(all, "PATCH", "/settings"), { query: "settings=x", body: undefined }, registry))).toMatch(/unknown query parameter/);
    expect(refusal(() => requestFor(matched(all, "PATCH", "/settings"), { query: "update_mask.paths=x", body: {} }, registry))).toMatch(/unknown query parameter/);
  });

  it("refuses values of the wrong type, naming the field", () => {
    const list = matched(all, "GET", "/licenses");
    expect(refusal(() => requestFor(list, { query: "page_size=ten", body: undefined }, registry))).toMatch(/page_size: expected an integer/);
    expect(refusal(() => requestFor(list, { query: "statuses=LICENSE_STATUS_NOPE", body: undefined }, registry))).toMatch(/statuses/);
    expect(refusal(() => requestFor(matched(all, "POST", "/licenses"), { query: "", body: { term: 12 } }, registry))).toMatch(/^term: /);
    expect(refusal(() => requestFor(matched(all, "POST", "/licenses"), { query: "", body: { colour: "red" } }, registry))).toMatch(/colour/);
    expect(refusal(() => requestFor(matched(all, "POST", "/licenses"), { query: "", body: ["x"] }, registry))).toMatch(/JSON object/);
  });

  it("refuses a body where the rule takes none, bad percent-encoding and overlong queries", () => {
    expect(refusal(() => requestFor(matched(all, "GET", "/licenses"), { query: "", body: {} }, registry))).toMatch(/takes no request body/);
    expect(refusal(() => requestFor(matched(all, "GET", "/licenses/%E0%A4%A"), { query: "", body: undefined }, registry))).toMatch(/percent-encoding/);
    expect(refusal(() => requestFor(matched(all, "GET", "/licenses"), { query: `customer=${"x".repeat(5_000)}`, body: undefined }, registry))).toMatch(/longer than/);
    expect(refusal(() => requestFor(matched(all, "GET", "/licenses"), { query: Array.from({ length: 70 }, () => "statuses=1").join("&"), body: undefined }, registry))).toMatch(/more than 64/);
  });
});
