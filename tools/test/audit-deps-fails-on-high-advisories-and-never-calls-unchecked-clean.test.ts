/**
 * `npm run audit:deps` judges `npm audit --json`: a high or critical advisory in a production
 * dependency fails it, lower ones do not, and an answer that is no report (the registry serves no
 * advisories, the network is down) is "not checked", never "clean".
 */
import { describe, expect, it } from "vitest";
import { judgeAudit } from "../audit-deps.js";

function report(vulnerabilities: Record<string, { severity: string; title: string }>): string {
  const counts: Record<string, number> = { info: 0, low: 0, moderate: 0, high: 0, critical: 0, total: 0 };
  const entries = Object.fromEntries(
    Object.entries(vulnerabilities).map(([name, v]) => {
      counts[v.severity] = (counts[v.severity] ?? 0) + 1;
      counts.total = (counts.total ?? 0) + 1;
      return [name, { name, severity: v.severity, isDirect: false, range: "<1.2.3", via: [{ title: v.title, url: `https://example.invalid/${name}`, severity: v.severity }] }];
    }),
  );
  return JSON.stringify({ auditReportVersion: 2, vulnerabilities: entries, metadata: { vulnerabilities: counts } });
}

describe("audit:deps", () => {
  it("fails on a high or a critical advisory and names the package and the advisory", () => {
    for (const severity of ["high", "critical"]) {
      const verdict = judgeAudit(report({ minimist: { severity, title: "Prototype Pollution in minimist" } }));
      expect(verdict.kind).toBe("vulnerable");
      expect(verdict.lines.join("\n")).toContain(`${severity} minimist <1.2.3: Prototype Pollution in minimist`);
    }
  });

  it("passes a report whose advisories are all below high, and says what it saw", () => {
    const verdict = judgeAudit(report({ a: { severity: "moderate", title: "slow regex" }, b: { severity: "low", title: "x" } }));
    expect(verdict).toEqual({ kind: "clean", lines: ["no high or critical advisory in production dependencies (info 0, low 1, moderate 1, high 0, critical 0)"] });
  });

  it("calls an error document, empty output or text 'unreachable', never clean", () => {
    const registryError = JSON.stringify({ message: "405 Method Not Allowed - POST https://registry.example/-/npm/v1/security/advisories/bulk", statusCode: 405 });
    expect(judgeAudit(registryError)).toEqual({ kind: "unreachable", lines: ["405 Method Not Allowed - POST https://registry.example/-/npm/v1/security/advisories/bulk"] });
    expect(judgeAudit("").kind).toBe("unreachable");
    expect(judgeAudit("npm error network").kind).toBe("unreachable");
    expect(judgeAudit("null").kind).toBe("unreachable");
  });
});
