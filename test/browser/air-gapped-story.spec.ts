/**
 * An air-gapped site told through the console (docs/design.md §15), in Chromium against the
 * whole system: onboarding provisions an air-gapped deployment, the box (a process writing the
 * file a box writes, see air-gapped-box.ts) makes its activation request, onboarding uploads it
 * on the Offline page, reads what it asks, answers it and downloads the response file; a file
 * that is too large or not a request is refused on the page before anything is sent; support
 * switches the deployment's connectivity behind a reasoned confirmation; super_admin sees the
 * air-gapped lease refused on its field. Every screen is checked with axe.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { expect, type Page } from "@playwright/test";
import { clusterState, expectAccessible, screenshot, signIn, test } from "./fixtures.js";
import { licenseClaims } from "./sim.js";

test.describe.configure({ mode: "serial" });

const REPO_ROOT = resolve(fileURLToPath(import.meta.url), "../../..");
const state = clusterState();
const main = (page: Page) => page.getByRole("main");
const stateSection = (page: Page) => page.getByRole("region", { name: "State" });
/** What the story made, for the later steps. */
const made: { token?: string; licenseId?: string; deploymentId?: string } = {};

/** A JWS part as JSON, read without verifying (the box verifies its answer). */
function part(file: string, index: 0 | 1): Record<string, unknown> {
  return JSON.parse(Buffer.from(file.trim().split(".")[index] ?? "", "base64url").toString("utf8")) as Record<string, unknown>;
}

test("onboarding provisions an air-gapped deployment, answers its box's activation request and downloads the response file", async ({ page }, testInfo) => {
  await signIn(page, "onboarding", "/licensing/license-new");
  await expect(page.getByRole("heading", { level: 1, name: "New license" })).toBeVisible();
  await page.getByRole("radio", { name: "Provision a new deployment" }).check();
  await page.getByLabel("Deployment name").fill("radiology-bunker");
  await page.getByLabel("Customer").fill("st-mary");
  await page.getByRole("radio", { name: "Air-gapped" }).check();
  await page.getByRole("checkbox", { name: "Issue its licence now" }).check();
  await page.getByRole("button", { name: "Provision deployment" }).click();
  await expect(page.getByRole("heading", { name: /Deployment provisioned|Licence issued/ })).toBeVisible();
  await expect(main(page)).toContainText("An air-gapped box activates by file");
  const token = await page.getByRole("textbox", { name: "Licence token" }).inputValue();
  Object.assign(made, { token, ...licenseClaims(token) });

  // The deployment reads as air-gapped; onboarding may not switch it (license.revoke).
  await page.goto(`${state.consoleUrl}/licensing/deployments/${made.deploymentId}`);
  await expect(stateSection(page)).toContainText("Air-gapped");
  await expect(main(page).getByRole("button", { name: "Switch to online", exact: true })).toHaveAttribute("aria-disabled", "true");

  // The box, on its side of the gap, writes its activation request.
  const requestPath = execFileSync(
    process.execPath,
    ["--conditions=source", "--import", "tsx", join(REPO_ROOT, "test/browser/air-gapped-box.ts"), join(state.dataDir, "air-gapped", "radiology-bunker"), token, "radiology-bunker-board-0"],
    { cwd: REPO_ROOT, encoding: "utf8" },
  ).trim();
  const request = readFileSync(requestPath, "utf8");

  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Offline", exact: true }).click();
  await expect(page.getByRole("heading", { level: 1, name: "Offline" })).toBeVisible();
  await expect(main(page).getByRole("button", { name: "Answer request" })).toHaveAttribute("aria-disabled", "true");
  await expectAccessible(page, "Offline (empty)");

  await page.getByLabel("Request file", { exact: true }).setInputFiles(requestPath);
  await expect(page.getByLabel("Request file text")).toHaveValue(request);
  const asked = page.getByRole("region", { name: "Activation request" });
  await expect(asked).toContainText(made.licenseId!);
  await expect(asked).toContainText(String(part(request, 1).fph));
  await expectAccessible(page, "Offline (a request read)");

  await main(page).getByRole("button", { name: "Answer request" }).click();
  const answered = page.getByRole("region", { name: "Activation answered" });
  await expect(answered).toBeVisible();
  await expect(answered).toContainText("Active");
  await expect(answered).toContainText("carry the response file back to the box");
  await expect(answered.getByRole("button", { name: "Copy response file" })).toBeVisible();

  const download = page.waitForEvent("download");
  await answered.getByRole("link", { name: "Download response file" }).click();
  const saved = await download;
  expect(saved.suggestedFilename()).toBe(`${made.licenseId}-activation-response.jwt`);
  const response = readFileSync(await saved.path(), "utf8");
  expect(response).toBe(await page.getByRole("textbox", { name: "Response file" }).inputValue());
  expect(part(response, 0).typ).toBe("activation-response+jwt");
  // The answer is to this box's request: its licence, deployment, fingerprint and nonce.
  expect(part(response, 1)).toMatchObject({ sub: made.licenseId, dep: made.deploymentId, fph: part(request, 1).fph, nce: part(request, 1).nce, st: "ACTIVE" });
  await expectAccessible(page, "Offline (answered)");
  await screenshot(page, testInfo, "offline-answered");

  // The deployment is active, told by its lease answered by file.
  await answered.getByRole("link", { name: made.deploymentId! }).click();
  await expect(stateSection(page)).toContainText(/active/i);
  await expect(stateSection(page)).toContainText("answered by file");
});

test("a file too large or not a request is refused on the Offline page, before anything is sent", async ({ page }) => {
  await signIn(page, "onboarding", "/licensing/offline");
  await expect(page.getByRole("heading", { level: 1, name: "Offline" })).toBeVisible();
  const picker = page.getByLabel("Request file", { exact: true });
  await picker.setInputFiles({ name: "core-dump.bin", mimeType: "application/octet-stream", buffer: Buffer.alloc(17 * 1024, 0x41) });
  await expect(picker).toHaveAttribute("aria-invalid", "true");
  await expect(main(page)).toContainText("core-dump.bin is larger than 16 KiB");

  const text = page.getByLabel("Request file text");
  await text.fill("<script>alert(1)</script>");
  await expect(text).toHaveAttribute("aria-invalid", "true");
  await expect(main(page)).toContainText("This is not a request file");
  await expect(main(page).getByRole("button", { name: "Answer request" })).toHaveAttribute("aria-disabled", "true");

  // A forged request of the right kind is read for display, and refused by licensing in words.
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
  await text.fill(`${b64({ alg: "ES256", typ: "activation-request+jwt" })}.${b64({ v: 1, lic: made.licenseId, iat: 1_800_000_000 })}.${b64("forged")}`);
  await expect(page.getByRole("region", { name: "Activation request" })).toContainText(made.licenseId!);
  await main(page).getByRole("button", { name: "Answer request" }).click();
  await expect(main(page).getByRole("alert")).toContainText("The activation request was not answered");
  await expect(main(page).getByRole("alert")).toContainText(/Reason: FILE_/);
  await expectAccessible(page, "Offline (a refused request)");
});

test("support switches the air-gapped deployment to online behind a confirmation that asks why", async ({ page }) => {
  await signIn(page, "support", `/licensing/deployments/${made.deploymentId}`);
  await expect(stateSection(page)).toContainText("Air-gapped");
  await main(page).getByRole("button", { name: "Switch to online", exact: true }).click();
  const dialog = page.getByRole("dialog", { name: "Switch radiology-bunker to online?" });
  await expect(dialog).toBeVisible();
  await expectAccessible(page, "Deployment (switch connectivity)");
  // No reason: the service refuses, and says so on the field.
  await dialog.getByRole("button", { name: "Switch to online" }).click();
  await expect(dialog.getByLabel(/^Reason/)).toHaveAttribute("aria-invalid", "true");
  await dialog.getByLabel(/^Reason/).fill("site connected to the hospital network");
  await dialog.getByRole("button", { name: "Switch to online" }).click();
  await expect(dialog).toBeHidden();
  await expect(stateSection(page)).toContainText("Online");
  await expect(main(page).getByRole("button", { name: "Switch to air-gapped", exact: true })).toBeVisible();
});

test("super_admin sees the air-gapped settings, and a renewal window past the lease refused on its field", async ({ page }) => {
  await signIn(page, "super_admin", "/licensing/settings");
  const lease = page.getByLabel("Air-gapped lease", { exact: true });
  const renew = page.getByLabel("Air-gapped renewal after", { exact: true });
  await expect(lease).not.toHaveValue("");
  await renew.fill("1000");
  await page.getByLabel("Air-gapped renewal after unit").selectOption("d");
  await page.getByRole("button", { name: "Save settings" }).click();
  await expect(renew).toHaveAttribute("aria-invalid", "true");
  await expect(lease).not.toHaveAttribute("aria-invalid", "true");
  await expectAccessible(page, "Settings (a refused air-gapped value)");
  await page.getByRole("button", { name: "Discard changes" }).click();
});
