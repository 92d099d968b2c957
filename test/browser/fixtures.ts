/**
 * What every browser test shares: the running system's state (from the global setup), signing in
 * through the dev identity provider's real login page, an axe check that fails on serious or
 * critical violations, and a full-page screenshot of a screen written under the test output so a
 * reviewer can look at each one.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { AxeBuilder } from "@axe-core/playwright";
import { expect, test as base, type Page, type TestInfo } from "@playwright/test";
import type { BrowserClusterState } from "./state.js";

/** The four roles of the product page, each a dev user of the identity provider. */
export type Role = "onboarding" | "support" | "super_admin" | "auditor";

/** The running system, as the global setup wrote it. */
export function clusterState(): BrowserClusterState {
  const path = process.env.LCP_BROWSER_STATE;
  if (!path) throw new Error("LCP_BROWSER_STATE is not set: run these tests through playwright.config.ts (npm run test:browser)");
  return JSON.parse(readFileSync(path, "utf8")) as BrowserClusterState;
}

/**
 * Opens `path` on the console; when the console sends the browser to sign in, signs in on the
 * identity provider's page as the dev user of `role` and waits to be back on `path`.
 */
export async function signIn(page: Page, role: Role, path = "/licensing"): Promise<void> {
  const state = clusterState();
  const user = state.users[role];
  if (!user) throw new Error(`no dev user for role ${role}`);
  await page.goto(`${state.consoleUrl}${path}`);
  if (!page.url().startsWith(state.consoleUrl)) {
    await page.getByLabel("Username").fill(user.username);
    await page.getByLabel("Password").fill(user.password);
    await page.getByRole("button", { name: "Sign in" }).click();
  }
  await page.waitForURL((url) => url.href.startsWith(`${state.consoleUrl}${path}`));
}

/** Runs axe on the page as it is now; fails on any serious or critical violation, naming them. */
export async function expectAccessible(page: Page, screen: string): Promise<void> {
  const results = await new AxeBuilder({ page }).analyze();
  const bad = results.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  const summary = bad.map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).slice(0, 3).join("; ")})`);
  expect(summary, `axe on ${screen}`).toEqual([]);
}

/** Writes a full-page screenshot to `test-results/browser/screens/<name>.png` (one folder to review) and attaches it. */
export async function screenshot(page: Page, testInfo: TestInfo, name: string): Promise<void> {
  const path = join(testInfo.project.outputDir, "screens", `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  await testInfo.attach(name, { path, contentType: "image/png" });
}

/** The Playwright `test` with a fresh browser context per test (`page` is already that). */
export const test = base;
export { expect };
