import { defineConfig } from "vitest/config";

// One config for the whole workspace. Workspace packages resolve to their TypeScript sources
// through the "source" export condition, so tests never need a build first.
const faults = process.env.LCP_FAULTS === "1";

export default defineConfig({
  resolve: { conditions: ["source"] },
  ssr: { resolve: { conditions: ["source"], externalConditions: ["source"] } },
  test: {
    // test/faults/ restarts shared servers (PostgreSQL), so it never runs beside other suites:
    // `npm run test:faults` runs it alone (LCP_FAULTS=1), after the main run.
    include: faults ? ["test/faults/**/*.test.ts"] : ["{libs,apps,tools}/**/*.test.ts", "test/**/*.test.ts"],
    exclude: ["**/node_modules/**", "**/dist/**", ...(faults ? [] : ["test/faults/**"])],
    pool: "forks",
    // Two files at a time on these 2-core machines (vitest's default is cores − 1, one here): most
    // suites wait on child processes, TLS and the database rather than the CPU.
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    teardownTimeout: 10_000,
    reporters: ["default"],
  },
});
