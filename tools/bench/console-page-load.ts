/**
 * The browser half of `npm run bench -- console`: the console's page load in Chromium over the
 * bench's running, seeded services (console.ts hands them over as a {@link ConsoleBenchFleet}).
 *
 * - The console's web app is built when `apps/console/dist/web/index.html` is missing or older than
 *   its sources, and the console server started in this process on the port the identity
 *   provider's redirect URIs name, against the bench's licensing, audit and signing-keys.
 * - Chromium (Debian's, launched as playwright.config.ts launches it) signs in once as the support
 *   dev user on the identity provider's login page. Then, `CONSOLE_BENCH_PAGE_LOADS` times (default
 *   7, after one round not counted), each in a fresh tab: navigation to `/licensing` until the
 *   frame that shows the first licence of page 1 in the table "Licences", cold (a new browser
 *   context holding only the session cookie: empty cache, new connections) and warm (the signed-in
 *   context: its cached assets). The time is the page's own: `performance.now()` (from the start of
 *   the navigation) in the first animation frame after the row is in the document, recorded by a
 *   script added before the page's own; Playwright then checks that row is visible. Baseline, in
 *   the same rounds: the ListLicenses RPC for the same page from node (what the screen asks for,
 *   without a browser or the console in between).
 * - The first-load JavaScript: every script index.html names or modulepreloads, and any other the
 *   cold loads fetched, gzipped at level 9 (goal: at most 250 KB), beside the same files uncompressed.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startConsole } from "@lcp/console/app";
import { LicensingService } from "@lcp/proto/licensing/v1/licensing_service_pb";
import { createAdminClient } from "@lcp/rpc";
import { chromium, type BrowserContext, type LaunchOptions } from "@playwright/test";
import { ensureConsoleAssets } from "../dev/console-assets.js";
import type { ConsoleBenchFleet } from "./console.js";
import { firstLoadJavaScript } from "./first-load-js.js";
import { median, type BenchResult } from "./result.js";

const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** The built web app the console serves. */
const WEB_ROOT = join(REPO_ROOT, "apps/console/dist/web");
/** The Licenses screen's page size: the page the RPC baseline asks for. */
const PAGE_SIZE = 50;
/** How long one page load may take before the bench gives up on it. */
const LOAD_TIMEOUT_MS = 60_000;
/** KB as Vite reports bundle sizes: 1,000 bytes. */
const KB = 1_000;
/** The global the timing script writes the first row's time to. */
const FIRST_ROW_GLOBAL = "__lcpBenchFirstRowMs";

/** Chromium as playwright.config.ts launches it for the browser tests: Debian's, cut off from the network's extras. */
const LAUNCH: LaunchOptions = {
  executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
};
/** As the browser tests' contexts: the test CA is not in Chromium's store (TLS is the console's node tests' to prove). */
const CONTEXT = { ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } };

/** Measures the console's page load over `fleet` (see the module comment); everything it starts is closed through `fleet.defer`. */
export async function measureConsolePageLoadInChromium(fleet: ConsoleBenchFleet): Promise<BenchResult[]> {
  const loads = Number(process.env.CONSOLE_BENCH_PAGE_LOADS ?? 7);
  if (!Number.isInteger(loads) || loads < 1) throw new Error(`CONSOLE_BENCH_PAGE_LOADS must be a positive integer (got ${process.env.CONSOLE_BENCH_PAGE_LOADS})`);
  const support = fleet.identityProvider.users.support;
  if (!support) throw new Error("the identity provider has no support user");

  ensureConsoleAssets(REPO_ROOT, (line) => console.error(`  ${line}`));
  const dataDir = await mkdtemp(join(tmpdir(), "lcp-bench-console-"));
  fleet.defer(() => rm(dataDir, { recursive: true, force: true }));
  const app = await startConsole({
    host: "127.0.0.1",
    port: fleet.console.port,
    publicUrl: fleet.console.url,
    dataDir,
    tls: { ...fleet.console.tls, caPem: fleet.caPem, source: "files" },
    upstreams: {
      licensing: fleet.licensingUrl,
      signingKeys: fleet.signingKeysUrl,
      audit: fleet.auditUrl,
      // No fleet-sweep runs here, and the Licenses screen never calls it.
      fleetSweep: "https://localhost:9",
    },
    oidc: {
      issuer: fleet.identityProvider.issuer,
      clientId: fleet.identityProvider.consoleClient.clientId,
      clientSecret: { value: fleet.identityProvider.consoleClient.clientSecret },
      caPem: fleet.caPem,
      scopes: "openid profile",
      rolesClaim: "roles",
    },
    sessionIdleTimeoutMs: 30 * 60_000,
    sessionMaxAgeMs: 12 * 3_600_000,
    maxSessions: 1_000,
    webRoot: WEB_ROOT,
    logLevel: "silent",
    // Sessions in SQLite under the throwaway data folder, sealed with a development key made there.
    sessionKey: { kind: "dev", dataDir },
  });
  fleet.defer(() => app.close());
  const browser = await chromium.launch(LAUNCH);
  fleet.defer(() => browser.close());

  // The first licence of page 1 with its deployment's name: the row the screen must show first.
  const lic = createAdminClient(LicensingService, { baseUrl: fleet.licensingUrl, caPem: fleet.caPem, token: await fleet.adminToken(["support"]), retries: 0 });
  const listPage = () => lic.listLicenses({ pageSize: PAGE_SIZE });
  const page1 = await listPage();
  const first = page1.licenses[0];
  const firstName = page1.deployments.find((d) => d.id === first?.deploymentId)?.name;
  if (!first || !firstName) throw new Error("ListLicenses answered no licence with its deployment on page 1");

  const url = `${fleet.console.url}/licensing`;
  const signedIn = await browser.newContext(CONTEXT);
  await signIn(signedIn, url, support);
  const scripts = new Set<string>();
  const cold = async () => {
    // A new context is a new profile in memory: no cache, no connections, only the session cookie.
    const context = await browser.newContext({ ...CONTEXT, storageState: await signedIn.storageState() });
    try {
      return await timeLoad(context, url, firstName, scripts);
    } finally {
      await context.close();
    }
  };
  const warm = () => timeLoad(signedIn, url, firstName, scripts);
  const rpc = async () => {
    const t = performance.now();
    await listPage();
    return performance.now() - t;
  };

  const times = { cold: [] as PageLoad[], warm: [] as PageLoad[], rpc: [] as number[] };
  for (let round = -1; round < loads; round++) {
    const r = await rpc();
    const c = await cold();
    const w = await warm();
    if (round < 0) continue;
    times.rpc.push(r);
    times.cold.push(c);
    times.warm.push(w);
  }
  await signedIn.close();
  const rpcMs = median(times.rpc);
  const scale = `${fleet.deployments.toLocaleString("en-US")} deployments, ${fleet.pg ? "PostgreSQL" : "SQLite"}; median of ${loads}; ms, lower is better; ratio = baseline/value`;
  const baseline = `ListLicenses RPC, page 1 of ${PAGE_SIZE}, from node (no browser, no console)`;
  const row = (kind: string, samples: PageLoad[]): BenchResult => {
    const value = median(samples.map((l) => l.ms));
    const at = (name: keyof PageLoad["marks"]) => {
      const seen = samples.map((l) => l.marks[name]).filter(Number.isFinite);
      return seen.length > 0 ? median(seen).toFixed(0) : "—";
    };
    const detail = `medians from the navigation's start: app script evaluated (DOMContentLoaded) ${at("scriptsRun")} ms, session answered ${at("session")} ms, ListLicenses asked ${at("listAsked")} ms and answered ${at("listAnswered")} ms`;
    console.error(`  console page load, ${kind}: ${value.toFixed(0)} ms (RPC ${rpcMs.toFixed(2)} ms); ${detail}`);
    return {
      name: `Console in Chromium: navigation → first page of Licenses shown, ${kind} (${scale})`,
      detail,
      value,
      unit: "ms",
      baseline,
      baselineValue: rpcMs,
      ratio: rpcMs / value,
      goal: "value < 1,000 ms at 1,000,000",
    };
  };

  const js = await firstLoadJavaScript(WEB_ROOT, scripts);
  console.error(`  console first-load JavaScript: ${js.files.join(", ")}: ${(js.gzipBytes / KB).toFixed(1)} KB gzipped, ${(js.rawBytes / KB).toFixed(1)} KB raw`);
  return [
    row("cold (new context: empty cache, new connections)", times.cold),
    row("warm (signed-in context: cached assets)", times.warm),
    {
      name: `Console first-load JavaScript, gzip level 9 (${js.files.length} file${js.files.length === 1 ? "" : "s"}: index.html's scripts and modulepreloads, and any other the cold loads fetched; KB = 1,000 bytes; ratio = value/baseline, what gzip keeps)`,
      value: js.gzipBytes / KB,
      unit: "KB",
      baseline: "the same files uncompressed",
      baselineValue: js.rawBytes / KB,
      ratio: js.gzipBytes / js.rawBytes,
      goal: "value ≤ 250 KB",
    },
  ];
}

/** Opens `url` and, when sent to the identity provider, signs in on its login page as `user`; waits to be back. */
async function signIn(context: BrowserContext, url: string, user: { username: string; password: string }): Promise<void> {
  const page = await context.newPage();
  try {
    await page.goto(url);
    if (!page.url().startsWith(url)) {
      await page.getByLabel("Username").fill(user.username);
      await page.getByLabel("Password").fill(user.password);
      await page.getByRole("button", { name: "Sign in" }).click();
    }
    await page.waitForURL((u) => u.href.startsWith(url), { timeout: LOAD_TIMEOUT_MS });
    await page.getByRole("table", { name: "Licences" }).getByRole("row").nth(1).waitFor({ timeout: LOAD_TIMEOUT_MS });
  } finally {
    await page.close();
  }
}

/**
 * One page load in a fresh tab of `context`: milliseconds from the start of the navigation to the
 * first animation frame after the first row of "Licences" shows the licence named `firstName`
 * (the loading placeholder is a row too, so the row is known by its link). Adds the same-origin
 * scripts the page fetched to `scripts` (paths under `/assets/`).
 */
async function timeLoad(context: BrowserContext, url: string, firstName: string, scripts: Set<string>): Promise<PageLoad> {
  const page = await context.newPage();
  try {
    const origin = new URL(url).origin;
    page.on("request", (req) => {
      const u = new URL(req.url());
      if (req.resourceType() === "script" && u.origin === origin) scripts.add(u.pathname);
    });
    await page.addInitScript({ content: firstRowTimer(firstName) });
    await page.goto(url, { waitUntil: "commit", timeout: LOAD_TIMEOUT_MS });
    const table = page.getByRole("table", { name: "Licences" });
    await table.getByRole("row").nth(1).getByRole("link", { name: firstName, exact: true }).waitFor({ state: "visible", timeout: LOAD_TIMEOUT_MS });
    const at = await page.waitForFunction(`globalThis.${FIRST_ROW_GLOBAL}`, undefined, { timeout: LOAD_TIMEOUT_MS });
    const ms = Number(await at.jsonValue());
    if (!Number.isFinite(ms) || ms <= 0) throw new Error(`the page recorded no time for its first row (${ms})`);
    const marks = JSON.parse(String(await page.evaluate(MARKS_SCRIPT))) as Partial<Record<keyof PageLoad["marks"], number>>;
    const mark = (name: keyof PageLoad["marks"]) => marks[name] ?? Number.NaN;
    return { ms, marks: { scriptsRun: mark("scriptsRun"), session: mark("session"), listAsked: mark("listAsked"), listAnswered: mark("listAnswered") } };
  } finally {
    await page.close();
  }
}

/** One page load: the time to its first row, and where the time went (ms from the start of the navigation; NaN when not seen). */
interface PageLoad {
  ms: number;
  marks: {
    /** DOMContentLoaded done: the app's module script fetched and evaluated (React renders after it). */
    scriptsRun: number;
    /** The console's `/auth/session` answered. */
    session: number;
    /** The ListLicenses call through the console asked, and answered. */
    listAsked: number;
    listAnswered: number;
  };
}

/** Reads the page's Navigation and Resource Timing entries into {@link PageLoad}'s marks, as JSON. */
const MARKS_SCRIPT = `(() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const resources = performance.getEntriesByType("resource");
  const session = resources.find((e) => e.name.endsWith("/auth/session"));
  const list = resources.find((e) => e.name.endsWith("/ListLicenses"));
  return JSON.stringify({ scriptsRun: nav?.domContentLoadedEventEnd, session: session?.responseEnd, listAsked: list?.startTime, listAnswered: list?.responseEnd });
})()`;

/**
 * The script run in the page before its own: watches the document until the first body row of the
 * table captioned "Licences" links to `firstName`, then records `performance.now()` in the next
 * animation frame (the one that paints it). Text, as the bench is compiled without the DOM's types.
 */
function firstRowTimer(firstName: string): string {
  return `(() => {
  const expected = ${JSON.stringify(firstName)};
  const shown = () => {
    for (const table of document.getElementsByTagName("table")) {
      if (table.caption?.textContent?.trim() !== "Licences") continue;
      const link = table.tBodies[0]?.rows[0]?.querySelector("a");
      if (link?.textContent?.trim() === expected) return true;
    }
    return false;
  };
  const observer = new MutationObserver(() => {
    if (!shown()) return;
    observer.disconnect();
    requestAnimationFrame(() => { globalThis.${FIRST_ROW_GLOBAL} = performance.now(); });
  });
  observer.observe(document, { childList: true, subtree: true, characterData: true });
})();`;
}
