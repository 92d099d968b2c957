import { describe, expect, it } from "vitest";
import { Health } from "@lcp/proto/grpc/health/v1/health_pb";
import { controlPlaneServices } from "@lcp/proto";
import { ROLE_PERMISSIONS, ROLES, SERVICE_NAMES, permissionsFor } from "@lcp/domain";
import { POLICY, REFLECTION_SERVICES, authorize, type Principal, type Rule } from "@lcp/rpc";

const procedures = [...controlPlaneServices, Health, ...REFLECTION_SERVICES].flatMap((s) =>
  s.methods.map((m) => `${s.typeName}/${m.name}`),
);

const principals: { label: string; principal: Principal }[] = [
  ...ROLES.map((role) => ({
    label: `admin:${role}`,
    principal: { kind: "admin", subject: role, roles: [role], permissions: permissionsFor([role]) } as Principal,
  })),
  ...SERVICE_NAMES.map((name) => ({ label: `service:${name}`, principal: { kind: "service", name } as Principal })),
  { label: "appliance", principal: { kind: "appliance", deploymentId: "dep-1", serialNumber: "AB" } },
  { label: "anonymous", principal: { kind: "anonymous" } },
];

/** What the rule means, derived from the role table rather than re-listed per RPC. */
function expected(rule: Rule, p: Principal): boolean {
  if ("public" in rule) return true;
  if ("permission" in rule) {
    return p.kind === "admin" && p.roles.some((r) => (ROLE_PERMISSIONS[r as keyof typeof ROLE_PERMISSIONS] as readonly string[]).includes(rule.permission));
  }
  if ("services" in rule) return p.kind === "service" && rule.services.includes(p.name);
  return p.kind === "appliance";
}

describe("the policy table", () => {
  it("has an entry for every RPC in the descriptors, and no entry for an RPC that does not exist", () => {
    expect(procedures.filter((p) => !Object.hasOwn(POLICY, p))).toEqual([]);
    expect(Object.keys(POLICY).filter((p) => !procedures.includes(p))).toEqual([]);
  });

  it.each(procedures)("%s decides for every principal exactly as its rule says", (procedure) => {
    const rule = POLICY[procedure]!;
    for (const { label, principal } of principals) {
      const verdict = authorize(principal, procedure);
      expect({ label, ok: verdict.ok }).toEqual({ label, ok: expected(rule, principal) });
      if (!verdict.ok) {
        expect(verdict.code).toBe(principal.kind === "anonymous" ? "unauthenticated" : "permission_denied");
        expect(verdict.reason).not.toBe("");
      }
    }
  });

  it("is public only where docs/design.md says so (GetJwks, Activate, health, reflection)", () => {
    const open = Object.entries(POLICY).filter(([, r]) => "public" in r).map(([p]) => p).sort();
    expect(open).toEqual([
      "grpc.health.v1.Health/Check",
      "grpc.health.v1.Health/List",
      "grpc.health.v1.Health/Watch",
      "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
      "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
      "licensing.v1.ApplianceService/Activate",
      "signing.v1.SigningKeyService/GetJwks",
    ]);
  });

  it("lets internal principals do only what docs/design.md §3 names", () => {
    const internal = Object.fromEntries(
      Object.entries(POLICY).filter(([, r]) => "services" in r).map(([p, r]) => [p, [...(r as { services: string[] }).services].sort()]),
    );
    expect(internal).toEqual({
      "signing.v1.SigningKeyService/Sign": ["licensing"],
      "signing.v1.SigningKeyService/IssueApplianceCertificate": ["licensing"],
      "signing.v1.SigningKeyService/GetApplianceTrustBundle": ["licensing"],
      "audit.v1.AuditService/Append": [...SERVICE_NAMES].sort(),
      "licensing.v1.ReconcileService/Reconcile": ["fleet-sweep"],
      "licensing.v1.ReconcileService/SplitFleet": ["fleet-sweep"],
      "licensing.v1.ReconcileService/GetSweepSchedule": ["fleet-sweep"],
    });
  });

  it("denies an RPC missing from the table to everyone, even super_admin", () => {
    for (const { principal } of principals) {
      const verdict = authorize(principal, "licensing.v1.LicensingService/DropAllTables");
      expect(verdict.ok).toBe(false);
    }
    const superAdmin = principals.find((p) => p.label === "admin:super_admin")!.principal;
    expect(authorize(superAdmin, "licensing.v1.LicensingService/DropAllTables")).toMatchObject({ code: "permission_denied" });
    expect(authorize({ kind: "anonymous" }, "x.v1.X/Y")).toMatchObject({ code: "unauthenticated" });
  });

  it("keeps signing keys to super_admin and the sweep away from onboarding", () => {
    const can = (role: string, procedure: string) =>
      authorize({ kind: "admin", subject: "s", roles: [role], permissions: permissionsFor([role]) }, procedure).ok;
    expect(can("super_admin", "signing.v1.SigningKeyService/CreateKey")).toBe(true);
    expect(can("support", "signing.v1.SigningKeyService/CreateKey")).toBe(false);
    expect(can("support", "fleet.v1.FleetSweepService/Sweep")).toBe(true);
    expect(can("onboarding", "fleet.v1.FleetSweepService/Sweep")).toBe(false);
    expect(can("auditor", "licensing.v1.LicensingService/GetSettings")).toBe(true);
    expect(can("auditor", "licensing.v1.LicensingService/UpdateSettings")).toBe(false);
  });
});
