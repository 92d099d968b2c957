/**
 * Playwright's global setup for the console's browser tests: builds the console's web assets (the
 * console server serves only built files, as in production), starts `cluster-main.ts` and waits
 * for its `ready`, hands its state file to the tests through `LCP_BROWSER_STATE`, and returns the
 * teardown that stops every process.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureConsoleAssets } from "../../tools/dev/console-assets.js";

const REPO_ROOT = resolve(fileURLToPath(import.meta.url), "../../..");

export default async function globalSetup(): Promise<() => Promise<void>> {
  // Always built afresh: the tests must see the sources as they are, whatever dist/ holds.
  ensureConsoleAssets(REPO_ROOT, (line) => console.log(line), { force: true });

  const statePath = join(mkdtempSync(join(tmpdir(), "lcp-browser-state-")), "state.json");
  const child = spawn(process.execPath, ["--conditions=source", "--import", "tsx", join(REPO_ROOT, "test/browser/cluster-main.ts"), statePath], {
    cwd: REPO_ROOT,
    stdio: ["ignore", "pipe", "inherit"],
  });
  await new Promise<void>((done, fail) => {
    const timer = setTimeout(() => fail(new Error("the browser cluster did not become ready within 150 s")), 150_000);
    let out = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      if (/^ready$/m.test(out)) {
        clearTimeout(timer);
        done();
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      fail(new Error(`the browser cluster exited (code ${code}) before it was ready:\n${out.slice(-3_000)}`));
    });
  });
  child.stdout!.resume();
  process.env.LCP_BROWSER_STATE = statePath;
  // Fail early and clearly if the state file is not what the tests expect.
  JSON.parse(readFileSync(statePath, "utf8"));

  return async () => {
    if (child.exitCode !== null) return;
    const exited = new Promise((done) => child.once("exit", done));
    child.kill("SIGTERM");
    const force = setTimeout(() => child.kill("SIGKILL"), 30_000);
    await exited;
    clearTimeout(force);
  };
}
