import { defineConfig } from "@playwright/test";

// The console's browser tests (test/browser/): Debian's Chromium, never a downloaded browser,
// against the whole system started once by the global setup. One worker: the tests tell one
// operator's story in order against one fleet.
export default defineConfig({
  testDir: "test/browser",
  testMatch: "**/*.spec.ts",
  outputDir: "test-results/browser",
  globalSetup: "./test/browser/global-setup.ts",
  workers: 1,
  fullyParallel: false,
  retries: 0,
  timeout: 90_000,
  expect: { timeout: 15_000 },
  reporter: [["list"]],
  use: {
    // The dev CA is not in Chromium's store; TLS itself is proven by the console server's node tests.
    ignoreHTTPSErrors: true,
    viewport: { width: 1280, height: 800 },
    trace: "retain-on-failure",
    screenshot: "only-on-failure",
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
      // --no-sandbox: CI runs as root. The rest keep Chromium from calling out of a closed network.
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    },
  },
});
