/**
 * The product page's story told through the console's screens, in Chromium, against the whole
 * system (dev identity provider, four services, console server; see cluster-main.ts):
 * onboarding provisions a deployment with its licence auto-issued and sees it in Licenses; a
 * simulated box activates and appears live on Heartbeats; onboarding cannot revoke, not even by
 * forcing the request through the console server; support suspends, restores, revokes (the box
 * locks), rebinds another deployment's licence to new hardware, runs a sweep and a dry run;
 * super_admin rotates the signing keys and tunes the settings; the audit screen shows each step
 * and verifies the chain. Every screen is checked with axe and photographed in its filled state.
 */
import { expect, type Page } from "@playwright/test";
import { clusterState, expectAccessible, screenshot, signIn, test, type Role } from "./fixtures.js";
import { licenseClaims, startBox, type SimulatedBox } from "./sim.js";

test.describe.configure({ mode: "serial" });

const state = clusterState();
const boxes: SimulatedBox[] = [];
/** What the story made, for the later steps. */
const made: { ward?: { token: string; licenseId: string; deploymentId: string }; theatre?: { token: string; licenseId: string; deploymentId: string } } = {};

test.afterAll(async () => {
  await Promise.all(boxes.map((b) => b.stop()));
});

const main = (page: Page) => page.getByRole("main");

/** Provisions a deployment on the New license screen and returns its auto-issued licence. */
async function provision(page: Page, name: string, customer: string) {
  await page.getByRole("link", { name: "New license", exact: true }).first().click();
  await expect(page.getByRole("heading", { level: 1, name: "New license" })).toBeVisible();
  await page.getByRole("radio", { name: "Provision a new deployment" }).check();
  await page.getByLabel("Deployment name").fill(name);
  await page.getByLabel("Customer").fill(customer);
  await page.getByRole("checkbox", { name: "Issue its licence now" }).check();
  await page.getByRole("button", { name: "Provision deployment" }).click();
  await expect(page.getByRole("heading", { name: /Deployment provisioned|Licence issued/ })).toBeVisible();
  const token = await page.getByRole("textbox", { name: "Licence token" }).inputValue();
  expect(token.split(".")).toHaveLength(3);
  return { token, ...licenseClaims(token) };
}

/** Opens a dialog by its button, fills `fields`, and confirms with the dialog's own button of `confirm`. */
async function confirmAction(page: Page, button: string, dialogName: RegExp, fields: Record<string, string>, confirm: string | RegExp = button) {
  await main(page).getByRole("button", { name: button, exact: true }).click();
  const dialog = page.getByRole("dialog", { name: dialogName });
  await expect(dialog).toBeVisible();
  // A label may carry a marker after its text ("Reason (required)").
  for (const [label, value] of Object.entries(fields)) await dialog.getByLabel(new RegExp(`^${label.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`)).fill(value);
  await dialog.getByRole("button", { name: confirm }).click();
  await expect(dialog).toBeHidden();
}

/** The deployment page's state section. */
const stateSection = (page: Page) => page.getByRole("region", { name: "State" });

test("onboarding provisions a deployment with its licence auto-issued and sees it in Licenses", async ({ page }, testInfo) => {
  await signIn(page, "onboarding");
  await expect(page.getByRole("heading", { level: 1, name: "Licenses" })).toBeVisible();
  made.ward = await provision(page, "icu-ward-3", "st-mary");
  await expect(page.getByRole("heading", { name: "Decoded claims" })).toBeVisible();
  await expect(page.getByRole("button", { name: "Copy token" })).toBeVisible();
  await expectAccessible(page, "New license (issued)");
  await screenshot(page, testInfo, "license-new");

  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Licenses" }).click();
  const table = page.getByRole("table", { name: "Licences" });
  const row = table.getByRole("row").filter({ hasText: "icu-ward-3" });
  await expect(row).toContainText("st-mary");
  await expect(row).toContainText(/pending/i);
  await expectAccessible(page, "Licenses");
});

test("a simulated box activates with the copied licence and appears live on Heartbeats", async ({ page }, testInfo) => {
  const ward = made.ward!;
  await signIn(page, "support", "/licensing/heartbeats");
  await expect(page.getByRole("heading", { level: 1, name: "Heartbeats" })).toBeVisible();
  const box = startBox(state, ward.token, "icu-ward-3", "icu-ward-3-mainboard-");
  boxes.push(box);
  await box.waitFor(/activated deployment/);
  // No reload: the screen polls, so the box shows up by itself.
  const row = page.getByRole("table", { name: "Heartbeats" }).getByRole("row").filter({ has: page.getByRole("link", { name: new RegExp(ward.deploymentId) }) });
  await expect(row).toContainText("Active", { timeout: 20_000 });
  await expect(row).toContainText("Connected", { timeout: 20_000 });
  await expect(page.getByRole("img", { name: /^Deployments by state/ })).toBeVisible();
  await expectAccessible(page, "Heartbeats");
  await screenshot(page, testInfo, "heartbeats");
});

test("onboarding sees revoke disabled with the reason, and a revoke forced through the console server is refused by licensing", async ({ page }) => {
  const ward = made.ward!;
  await signIn(page, "onboarding", `/licensing/deployments/${ward.deploymentId}`);
  await expect(page.getByRole("heading", { level: 1, name: "icu-ward-3" })).toBeVisible();
  await expect(main(page).getByRole("button", { name: "Revoke licence", exact: true })).toHaveAttribute("aria-disabled", "true");

  // What a curious onboarding admin could do from the browser's devtools: a well-formed call with
  // a valid session and CSRF token. The console server forwards it; licensing refuses it.
  const answer = await page.evaluate(async (licenseId) => {
    const session = (await (await fetch("/auth/session")).json()) as { csrfToken: string };
    const res = await fetch("/api/licensing.v1.LicensingService/RevokeLicense", {
      method: "POST",
      headers: { "content-type": "application/json", "connect-protocol-version": "1", "x-csrf-token": session.csrfToken },
      body: JSON.stringify({ licenseId, reason: "forced from devtools" }),
    });
    return { status: res.status, body: (await res.json()) as { code: string; message: string } };
  }, ward.licenseId);
  expect(answer.status).toBe(403);
  expect(answer.body.code).toBe("permission_denied");
  expect(answer.body.message).toContain("requires permission license.revoke");
});

test("support suspends and restores the subscription, and the box is told each time", async ({ page }, testInfo) => {
  const ward = made.ward!;
  await signIn(page, "support", `/licensing/deployments/${ward.deploymentId}`);
  await expect(stateSection(page)).toContainText(/active/i);
  await confirmAction(page, "Suspend subscription", /Suspend the subscription of icu-ward-3/, { Reason: "invoice unpaid" });
  await expect(stateSection(page)).toContainText(/suspended/i);
  await boxes[0]!.waitFor(/state SUSPENDED/);
  await confirmAction(page, "Restore subscription", /Restore the subscription of icu-ward-3/, { Reason: "invoice paid" });
  await expect(stateSection(page)).toContainText(/active/i);
  await boxes[0]!.waitFor(/state SUSPENDED[\s\S]*state ACTIVE/);
  await expectAccessible(page, "Deployment");
  await screenshot(page, testInfo, "deployment");
});

test("support revokes: the deployment locks, and so does the box", async ({ page }) => {
  const ward = made.ward!;
  await signIn(page, "support", `/licensing/deployments/${ward.deploymentId}`);
  await confirmAction(page, "Revoke licence", /Revoke the licence of icu-ward-3/, { Reason: "ward decommissioned", "Type icu-ward-3 to confirm": "icu-ward-3" });
  await expect(stateSection(page)).toContainText(/locked/i);
  await expect(stateSection(page)).toContainText(/revoked/i);
  await boxes[0]!.waitFor(/state LOCKED/, 20_000);
});

test("support rebinds another deployment's licence to new hardware, and the old box locks", async ({ page }) => {
  await signIn(page, "support");
  made.theatre = await provision(page, "theatre-2", "st-mary");
  const old = startBox(state, made.theatre.token, "theatre-2", "theatre-2-board-");
  boxes.push(old);
  await old.waitFor(/activated deployment/);
  await page.goto(`${state.consoleUrl}/licensing/deployments/${made.theatre.deploymentId}`);
  await expect(stateSection(page)).toContainText(/active/i);
  await confirmAction(page, "Rebind licence", /Rebind the licence of theatre-2/, { "New fingerprint": "theatre-2-new-board-0", Reason: "mainboard replaced" });
  await expect(stateSection(page)).toContainText(/pending/i);
  await old.waitFor(/state LOCKED/, 20_000);
});

test("support runs a sweep and a dry run and reads their reports", async ({ page }, testInfo) => {
  await signIn(page, "support", "/licensing/sweeps");
  await expect(page.getByRole("heading", { level: 1, name: "Sweeps" })).toBeVisible();
  await main(page).getByRole("button", { name: "Run sweep", exact: true }).click();
  await page.getByRole("dialog", { name: "Run a sweep now?" }).getByRole("button", { name: "Start sweep" }).click();
  await expect(page.getByRole("heading", { name: "Sweep report" })).toBeVisible();
  await expect(main(page)).toContainText(/Succeeded/i, { timeout: 30_000 });
  await main(page).getByRole("button", { name: "Dry run", exact: true }).click();
  await page.getByRole("dialog", { name: "Start a dry run?" }).getByRole("button", { name: "Start dry run" }).click();
  await expect(page.getByRole("heading", { name: "Dry run report" })).toBeVisible();
  const runs = page.getByRole("table", { name: "Sweep runs, newest first" });
  await expect(runs.getByRole("row")).toHaveCount(3);
  await expectAccessible(page, "Sweeps");
  await screenshot(page, testInfo, "sweeps");
});

test("super_admin rotates the signing keys and sees the published key set", async ({ page }, testInfo) => {
  await signIn(page, "super_admin", "/licensing/signing");
  await expect(page.getByRole("heading", { level: 1, name: "Signing keys" })).toBeVisible();
  const keys = page.getByRole("table", { name: "Signing keys" });
  // While the list loads, the table holds one placeholder row and is busy: count only once it is not.
  await expect(keys).not.toHaveAttribute("aria-busy", "true");
  await expect(keys.getByRole("row").nth(1)).toBeVisible();
  const before = await keys.getByRole("row").count();
  await main(page).getByRole("button", { name: "Rotate keys", exact: true }).click();
  const dialog = page.getByRole("dialog", { name: "Rotate the signing keys?" });
  await dialog.getByLabel(/^Reason/).fill("scheduled rotation");
  await dialog.getByRole("button", { name: "Rotate now" }).click();
  await expect(main(page).getByText("Signing keys rotated")).toBeVisible();
  await expect(keys.getByRole("row")).toHaveCount(before + 1);
  // The key that signed until now still verifies what it signed, retired.
  await expect(main(page).getByText("Retired (still verifies):")).toBeVisible();
  await expect(page.getByRole("region", { name: "Published key set (JWKS)" })).toContainText('"keys"');
  await expectAccessible(page, "Signing keys");
  await screenshot(page, testInfo, "signing");
});

test("super_admin tunes the settings; a value the service refuses is shown on its field", async ({ page }, testInfo) => {
  await signIn(page, "super_admin", "/licensing/settings");
  await expect(page.getByRole("heading", { level: 1, name: "Settings" })).toBeVisible();
  const interval = page.getByLabel("Heartbeat interval", { exact: true });
  await expect(interval).not.toHaveValue("");
  // Longer than the heartbeat timeout: the service refuses it, naming the field.
  await interval.fill("100000");
  await page.getByRole("button", { name: "Save settings" }).click();
  await expect(interval).toHaveAttribute("aria-invalid", "true");
  await expectAccessible(page, "Settings (a refused value)");
  await page.getByRole("button", { name: "Discard changes" }).click();
  await expect(interval).not.toHaveAttribute("aria-invalid", "true");
  await screenshot(page, testInfo, "settings");
});

test("the audit screen shows each step of the story and verifies the chain", async ({ page }, testInfo) => {
  await signIn(page, "auditor", "/licensing/audit");
  await expect(page.getByRole("heading", { level: 1, name: "Audit" })).toBeVisible();
  const events = page.getByRole("table", { name: "Audit events" });
  for (const action of ["deployment.provision", "license.issue", "license.activate", "deployment.suspend", "deployment.reactivate", "license.revoke", "license.rebind", "fleet.sweep", "authz.denied"]) {
    await expect(events.getByRole("row").filter({ hasText: action }).first(), action).toBeVisible();
  }
  await page.getByRole("button", { name: "Verify chain" }).click();
  await expect(main(page)).toContainText("Chain intact");
  await expectAccessible(page, "Audit");
  await screenshot(page, testInfo, "audit");
});

/** What each role's side navigation offers; the rest is shown disabled with the permission it needs. */
const NAV_BY_ROLE: Record<Role, string[]> = {
  onboarding: ["Licenses", "New license", "Offline", "Settings"],
  support: ["Licenses", "New license", "Offline", "Heartbeats", "Settings", "Sweeps", "Audit"],
  super_admin: ["Licenses", "New license", "Offline", "Heartbeats", "Signing keys", "Settings", "Sweeps", "Audit"],
  auditor: ["Licenses", "Heartbeats", "Settings", "Audit"],
};
const NAV = ["Licenses", "New license", "Offline", "Heartbeats", "Signing keys", "Settings", "Sweeps", "Audit"];

for (const role of Object.keys(NAV_BY_ROLE) as Role[]) {
  test(`${role} sees only its own screens and actions`, async ({ page }) => {
    // theatre-2: rebound and waiting for its new box, so every action is open to whoever may take it.
    await signIn(page, role, `/licensing/deployments/${made.theatre!.deploymentId}`);
    const nav = page.getByRole("navigation", { name: "Main" });
    for (const item of NAV) {
      const link = nav.getByRole("link", { name: item, exact: true });
      if (NAV_BY_ROLE[role].includes(item)) await expect(link, item).not.toHaveAttribute("aria-disabled", "true");
      else await expect(link, item).toHaveAttribute("aria-disabled", "true");
    }
    const mayRevoke = role === "support" || role === "super_admin";
    for (const action of ["Rebind licence", "Send directive", "Switch to air-gapped", "Revoke licence"]) {
      const button = main(page).getByRole("button", { name: action, exact: true });
      if (mayRevoke) await expect(button, action).not.toHaveAttribute("aria-disabled", "true");
      else await expect(button, action).toHaveAttribute("aria-disabled", "true");
    }
  });
}

test("an ended session goes back to sign-in and returns to the same page", async ({ page, context }) => {
  await signIn(page, "support", "/licensing/audit?action=license.revoke");
  await expect(page.getByRole("table", { name: "Audit events" }).getByRole("row").filter({ hasText: "license.revoke" }).first()).toBeVisible();
  // The session ends (its cookie gone, as when it expires): the next call sends the operator to sign in.
  await context.clearCookies();
  await page.getByRole("button", { name: "Verify chain" }).click();
  await page.getByLabel("Username").fill(state.users.support!.username);
  await page.getByLabel("Password").fill(state.users.support!.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${state.consoleUrl}/licensing/audit?action=license.revoke`);
  await expect(page.getByRole("heading", { level: 1, name: "Audit" })).toBeVisible();
});

test("every screen, filled, passes axe in the dark theme too and is photographed", async ({ browser }, testInfo) => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, colorScheme: "dark", viewport: { width: 1024, height: 768 } });
  try {
    const page = await context.newPage();
    await signIn(page, "super_admin");
    const screens: Array<[string, string, string]> = [
      ["licenses", "/licensing", "Licenses"],
      ["license-new-form", "/licensing/license-new", "New license"],
      ["offline-dark", "/licensing/offline", "Offline"],
      ["deployment-locked", `/licensing/deployments/${made.ward!.deploymentId}`, "icu-ward-3"],
      ["heartbeats-dark", "/licensing/heartbeats", "Heartbeats"],
      ["signing-dark", "/licensing/signing", "Signing keys"],
      ["settings-dark", "/licensing/settings", "Settings"],
      ["sweeps-dark", "/licensing/sweeps", "Sweeps"],
      ["audit-dark", "/licensing/audit", "Audit"],
    ];
    for (const [name, path, heading] of screens) {
      await page.goto(`${state.consoleUrl}${path}`);
      await expect(page.getByRole("heading", { level: 1, name: heading })).toBeVisible();
      await page.waitForLoadState("networkidle");
      // Nothing wider than a 1024 px laptop screen.
      expect(await page.evaluate<number>("document.documentElement.scrollWidth"), name).toBeLessThanOrEqual(1024);
      await expectAccessible(page, `${name} (dark, 1024 px)`);
      await screenshot(page, testInfo, `${name}-1024`);
    }
  } finally {
    await context.close();
  }
});
