/**
 * `npm run audit:deps`: fails when a production dependency has a known high or critical advisory.
 *
 * It asks the registry through `npm audit --omit=dev --json` and judges the answer with
 * {@link judgeAudit}. Exit codes: 0 clean, 1 vulnerable, 3 the advisory data could not be reached.
 * A registry (or mirror) that serves packages but not advisories answers the audit with an HTTP
 * error; that is "not checked", never "clean": with `--allow-unreachable` it still exits 0 but says
 * so on a line of its own, for machines whose registry has no advisory endpoint.
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

/** Severities that fail the check. */
const FAILING = new Set(["high", "critical"]);

/** What {@link judgeAudit} concluded. */
export type AuditVerdict =
  | { kind: "clean"; lines: string[] }
  | { kind: "vulnerable"; lines: string[] }
  | { kind: "unreachable"; lines: string[] };

interface NpmAuditVulnerability {
  name?: string;
  severity?: string;
  range?: string;
  via?: Array<string | { title?: string; url?: string; severity?: string }>;
  isDirect?: boolean;
}

/**
 * Reads the JSON `npm audit --json` printed. Anything that is not an audit report (an error
 * document, empty output, text) is "unreachable": the check did not happen.
 */
export function judgeAudit(stdout: string): AuditVerdict {
  let report: unknown;
  try {
    report = JSON.parse(stdout);
  } catch {
    return { kind: "unreachable", lines: ["npm audit printed no JSON report"] };
  }
  const doc = report as { vulnerabilities?: Record<string, NpmAuditVulnerability>; metadata?: { vulnerabilities?: Record<string, number> }; statusCode?: number; message?: string };
  if (!doc || typeof doc !== "object" || !doc.metadata?.vulnerabilities || !doc.vulnerabilities) {
    const why = typeof doc?.message === "string" ? doc.message : "npm audit answered without a report";
    return { kind: "unreachable", lines: [why] };
  }
  const failing = Object.entries(doc.vulnerabilities).filter(([, v]) => FAILING.has(String(v.severity)));
  if (failing.length === 0) {
    const counts = Object.entries(doc.metadata.vulnerabilities).filter(([k]) => k !== "total").map(([k, n]) => `${k} ${n}`).join(", ");
    return { kind: "clean", lines: [`no high or critical advisory in production dependencies (${counts})`] };
  }
  const lines = failing.map(([name, v]) => {
    const titles = (v.via ?? []).map((via) => (typeof via === "string" ? `via ${via}` : `${via.title ?? "advisory"} ${via.url ?? ""}`.trim()));
    return `${v.severity} ${name}${v.range ? ` ${v.range}` : ""}: ${titles.join("; ")}`;
  });
  return { kind: "vulnerable", lines };
}

function main(argv: string[]): number {
  const allowUnreachable = argv.includes("--allow-unreachable");
  const run = spawnSync("npm", ["audit", "--omit=dev", "--json"], { encoding: "utf8", timeout: 120_000 });
  const verdict = judgeAudit(run.stdout ?? "");
  switch (verdict.kind) {
    case "clean":
      console.log(`audit:deps: ${verdict.lines[0]}`);
      return 0;
    case "vulnerable":
      console.error("audit:deps: production dependencies with known high or critical advisories:");
      for (const line of verdict.lines) console.error(`  ${line}`);
      return 1;
    case "unreachable":
      console.error(`audit:deps: NOT CHECKED, the registry's advisory data could not be reached: ${verdict.lines[0]}`);
      return allowUnreachable ? 0 : 3;
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.exitCode = main(process.argv.slice(2));
