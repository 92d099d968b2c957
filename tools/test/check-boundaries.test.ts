import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { checkBoundaries, importsOf } from "../check-boundaries.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), "boundaries-"));
  dirs.push(root);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

describe("dependency boundaries", () => {
  it("finds import, export-from, side-effect and dynamic imports", () => {
    const src = `import a from "a";\nimport { b } from 'b';\nexport * from "./c.js";\nimport "d";\nconst e = await import("e");\nimport type { F } from "f";`;
    expect(importsOf(src).sort()).toEqual(["./c.js", "a", "b", "d", "e", "f"]);
  });

  it("refuses I/O in libs/domain, persistence in libs/rpc, libs/service outside apps, app-to-app and lib-to-app imports", () => {
    const root = tree({
      "libs/domain/src/a.ts": `import { readFileSync } from "node:fs";\nimport { x } from "./b.js";`,
      "libs/domain/src/b.ts": `export const x = 1;`,
      "libs/rpc/src/s.ts": `import { createOrm } from "@lcp/persistence";`,
      "libs/tokens/src/t.ts": `import { startAudit } from "@lcp/audit/app";`,
      "libs/persistence/src/p.ts": `import { startService } from "@lcp/service";`,
      "libs/service/src/s.ts": `import { createServer } from "@lcp/rpc";\nimport { createOrm } from "@lcp/persistence";`,
      "apps/audit/src/app.ts": `import { startService } from "@lcp/service";`,
      "apps/audit/src/main.ts": `import { x } from "@lcp/licensing/app";\nimport { y } from "../../licensing/src/y.js";\nimport { z } from "@lcp/audit/app";`,
      "apps/licensing/src/y.ts": `export const y = 1;`,
    });
    const rules = checkBoundaries(root).map((v) => `${v.file} ${v.specifier}`);
    expect(rules.sort()).toEqual([
      "apps/audit/src/main.ts ../../licensing/src/y.js",
      "apps/audit/src/main.ts @lcp/licensing/app",
      "libs/domain/src/a.ts node:fs",
      "libs/persistence/src/p.ts @lcp/service",
      "libs/rpc/src/s.ts @lcp/persistence",
      "libs/tokens/src/t.ts @lcp/audit/app",
    ]);
  });

  it("passes on this repository", () => {
    const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
    expect(checkBoundaries(root)).toEqual([]);
  });
});

describe("dependency boundaries in tests", () => {
  it("lets an app's tests start another app, but no test reaches into another package's files and no lib test needs an app", () => {
    const root = tree({
      "apps/licensing/test/a.test.ts": `import { startSigningKeys } from "@lcp/signing-keys/app";`,
      "apps/signing-keys/src/app.ts": `export const startSigningKeys = 1;`,
      "libs/sdk/test/b.test.ts": `import { h } from "../../../apps/licensing/test/support.js";\nimport { s } from "@lcp/licensing/app";`,
      "apps/licensing/src/app.ts": `export const s = 1;`,
      "libs/domain/test/c.test.ts": `import fc from "fast-check";`,
    });
    const found = checkBoundaries(root).map((v) => `${v.file} ${v.specifier}`);
    expect(found.sort()).toEqual(["libs/sdk/test/b.test.ts ../../../apps/licensing/test/support.js", "libs/sdk/test/b.test.ts @lcp/licensing/app"]);
  });
});
