/**
 * An air-gapped site told through the console (docs/design.md §15), in Chromium against the
 * whole system: onboarding provisions an air-gapped deployment; its box (the appliance simulator
 * with `--offline`, see sim.ts) writes an activation request file; onboarding uploads it on the
 * Offline page, reads what it asks, answers it and downloads the response file, which the box
 * imports and runs on; then the same for a renewal. A file that is too large or not a request is
 * refused on the page before anything is sent; support switches the deployment's connectivity
 * behind a reasoned confirmation; super_admin sees the air-gapped renewal window refused on its
 * field. Every screen is checked with axe.
 */
import { copyFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { expect, type Page, type TestInfo } from "@playwright/test";
import { clusterState, expectAccessible, screenshot, signIn, test } from "./fixtures.js";
import { licenseClaims, startBox, type SimulatedBox } from "./sim.js";

test.describe.configure({ mode: "serial" });

const state = clusterState();
const main = (page: Page) => page.getByRole("main");
const stateSection = (page: Page) => page.getByRole("region", { name: "State" });
/** What the story made, for the later steps. */
const made: { token?: string; licenseId?: string; deploymentId?: string; box?: SimulatedBox } = {};
/** Where the box and the operator exchange files (the USB stick), and the box's file names. */
const FILES = join(state.dataDir, "air-gapped-files");
const REQUEST = join(FILES, "radiology-bunker-board-0.request");
const RESPONSE = join(FILES, "radiology-bunker-board-0.response");

test.afterAll(async () => {
  await made.box?.stop();
});

/** A JWS part as JSON, read without verifying (the box verifies its answer). */
function part(file: string, index: 0 | 1): Record<string, unknown> {
  return JSON.parse(Buffer.from(file.trim().split(".")[index] ?? "", "base64url").toString("utf8")) as Record<string, unknown>;
}

/**
 * On the Offline page: uploads the box's request file, answers it, downloads the response and
 * puts it where the box looks for it. Returns the request and the response as text.
 */
async function answerRequest(page: Page, kind: "Activation" | "Renewal", testInfo: TestInfo) {
  const request = readFileSync(REQUEST, "utf8");
  await page.getByLabel("Request file", { exact: true }).setInputFiles(REQUEST);
  await expect(page.getByLabel("Request file text")).toHaveValue(request);
  const asked = page.getByRole("region", { name: `${kind} request` });
  await expect(asked).toContainText(made.licenseId!);
  await expect(asked).toContainText(String(part(request, 1).fph));
  await expectAccessible(page, `Offline (${kind.toLowerCase()} request read)`);

  await main(page).getByRole("button", { name: "Answer request" }).click();
  const answered = page.getByRole("region", { name: `${kind} answered` });
  await expect(answered).toBeVisible();
  await expect(answered).toContainText("Active");
  await expect(answered).toContainText("carry the response file back to the box");
  await expect(answered.getByRole("button", { name: "Copy response file" })).toBeVisible();

  const download = page.waitForEvent("download");
  await answered.getByRole("link", { name: "Download response file" }).click();
  const saved = await download;
  expect(saved.suggestedFilename()).toBe(`${made.licenseId}-${kind.toLowerCase()}-response.jwt`);
  const savedPath = await saved.path();
  const response = readFileSync(savedPath, "utf8");
  expect(response).toBe(await page.getByRole("textbox", { name: "Response file" }).inputValue());
  expect(part(response, 0).typ).toBe(`${kind.toLowerCase()}-response+jwt`);
  // The answer is to this box's request: its licence, deployment, fingerprint and nonce.
  expect(part(response, 1)).toMatchObject({ sub: made.licenseId, dep: made.deploymentId, fph: part(request, 1).fph, nce: part(request, 1).nce, st: "ACTIVE" });
  await expectAccessible(page, `Offline (${kind.toLowerCase()} answered)`);
  await screenshot(page, testInfo, `offline-${kind.toLowerCase()}-answered`);
  // The operator carries the file back and the box imports it.
  copyFileSync(savedPath, RESPONSE);
  return answered;
}

test("onboarding provisions an air-gapped deployment, answers its box's activation request, and the box runs on the downloaded response", async ({ page }, testInfo) => {
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

  // The deployment reads as air-gapped, in Licenses and on its page; onboarding may not switch it.
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Licenses" }).click();
  await expect(page.getByRole("table", { name: "Licences" }).getByRole("row").filter({ hasText: "radiology-bunker" })).toContainText("Air-gapped");
  await page.goto(`${state.consoleUrl}/licensing/deployments/${made.deploymentId}`);
  await expect(stateSection(page)).toContainText("Air-gapped");
  await expect(main(page).getByRole("button", { name: "Switch to online", exact: true })).toHaveAttribute("aria-disabled", "true");

  // The box, on its side of the gap, writes its activation request.
  made.box = startBox(state, token, "radiology-bunker", "radiology-bunker-board-", { offlineDir: FILES });
  await made.box.waitFor(/box 0 wrote activation request/);

  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Offline", exact: true }).click();
  await expect(page.getByRole("heading", { level: 1, name: "Offline" })).toBeVisible();
  await expect(main(page).getByRole("button", { name: "Answer request" })).toHaveAttribute("aria-disabled", "true");
  await expectAccessible(page, "Offline (empty)");

  const answered = await answerRequest(page, "Activation", testInfo);
  made.box.send("import");
  await made.box.waitFor(/box 0 imported activation response: ACTIVE lease seq 1/);

  // The deployment is active, told by its lease answered by file.
  await answered.getByRole("link", { name: made.deploymentId! }).click();
  await expect(stateSection(page)).toContainText(/active/i);
  await expect(stateSection(page)).toContainText("answered by file");
});

test("the box asks for its next lease by file: onboarding reads the renewal, answers it, and the box imports it", async ({ page }, testInfo) => {
  const box = made.box!;
  box.send("renew");
  await box.waitFor(/box 0 wrote renewal request/);
  await signIn(page, "onboarding", "/licensing/offline");
  await expect(page.getByRole("heading", { level: 1, name: "Offline" })).toBeVisible();
  await page.getByLabel("Request file", { exact: true }).setInputFiles(REQUEST);
  const asked = page.getByRole("region", { name: "Renewal request" });
  await expect(asked).toContainText(made.deploymentId!);
  await expect(asked).toContainText("sim_boxes: 1");
  await answerRequest(page, "Renewal", testInfo);
  box.send("import");
  await box.waitFor(/box 0 imported renewal response: ACTIVE lease seq [2-9]/);
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
