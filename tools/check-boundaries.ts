/**
 * Enforces the workspace's dependency boundaries (docs/CONVENTIONS.md "Layout and packages"):
 * - libs/domain imports nothing with I/O: only relative modules of its own;
 * - libs/rpc never imports persistence (the transport must not know the storage);
 * - only apps import libs/service: it wires rpc and persistence into a running app, so a lib that
 *   needed it would be wiring too;
 * - no lib imports an app, and no app imports another app;
 * - relative imports never climb out of their package, in sources and tests alike (cross-package use goes through the
 *   package name, so the boundary is visible in every import line).
 * Run as a script it prints the violations and exits 1; `npm test` runs it.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

/** One import that crosses a boundary it must not. */
export interface BoundaryViolation {
  file: string;
  specifier: string;
  rule: string;
}

const IMPORT_RE = /(?:^|[\s;])(?:import|export)\s[^"';]*?from\s*["']([^"']+)["']|import\s*\(\s*["']([^"']+)["']\s*\)|^\s*import\s*["']([^"']+)["']/gm;

/** The module specifiers a TypeScript source imports or re-exports. */
export function importsOf(source: string): string[] {
  const found: string[] = [];
  for (const m of source.matchAll(IMPORT_RE)) {
    const spec = m[1] ?? m[2] ?? m[3];
    if (spec) found.push(spec);
  }
  return found;
}

function tsFiles(dir: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  return entries.flatMap((name) => {
    if (name === "node_modules" || name === "dist") return [];
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return tsFiles(path);
    return /\.(m|c)?ts$/.test(name) && !name.endsWith(".d.ts") ? [path] : [];
  });
}

function packagesIn(root: string, group: "libs" | "apps"): string[] {
  try {
    return readdirSync(join(root, group)).filter((n) => statSync(join(root, group, n)).isDirectory());
  } catch {
    return [];
  }
}

/** Checks every package's `src/` under `root` and returns the violations found. */
export function checkBoundaries(root: string): BoundaryViolation[] {
  const apps = packagesIn(root, "apps");
  const appPackages = new Set(apps.map((a) => `@lcp/${a}`));
  const violations: BoundaryViolation[] = [];

  for (const group of ["libs", "apps"] as const) {
    for (const pkg of packagesIn(root, group)) {
      const pkgRoot = join(root, group, pkg);
      // Sources obey every rule; tests may start other apps (an app's tests need a real
      // signing-keys), but never climb into another package's files or make a lib need an app.
      const files = [...tsFiles(join(pkgRoot, "src")).map((f) => ({ f, test: false })), ...tsFiles(join(pkgRoot, "test")).map((f) => ({ f, test: true }))];
      for (const { f: file, test } of files) {
        const rel = relative(root, file).split(sep).join("/");
        for (const spec of importsOf(readFileSync(file, "utf8"))) {
          const add = (rule: string) => violations.push({ file: rel, specifier: spec, rule });
          const isRelative = spec.startsWith(".");
          if (isRelative) {
            const target = resolve(dirname(file), spec);
            if (!target.startsWith(pkgRoot + sep)) add("relative import leaves its package; import the package by name");
            continue;
          }
          const pkgName = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]!;
          if (group === "libs" && pkg === "domain" && !test) {
            add("libs/domain is pure: it imports only its own modules (no I/O, no other packages)");
            continue;
          }
          if (group === "libs" && pkg === "rpc" && (pkgName === "@lcp/persistence" || pkgName.startsWith("@mikro-orm") || pkgName === "pg" || pkgName === "better-sqlite3")) {
            add("libs/rpc never imports persistence");
          }
          if (group === "libs" && pkg !== "service" && !test && pkgName === "@lcp/service") {
            add("only apps import libs/service (it wires rpc and persistence together)");
          }
          if (appPackages.has(pkgName)) {
            if (group === "libs") add("a lib never imports an app");
            else if (!test && pkgName !== `@lcp/${pkg}`) add("an app never imports another app; talk through the typed clients");
          }
        }
      }
    }
  }
  return violations;
}

const isMain = process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
  const violations = checkBoundaries(root);
  for (const v of violations) console.error(`${v.file}: imports "${v.specifier}": ${v.rule}`);
  if (violations.length > 0) {
    console.error(`boundaries: ${violations.length} violation(s)`);
    process.exit(1);
  }
  console.log("boundaries: ok");
}
