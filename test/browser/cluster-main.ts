/**
 * The whole system for the console's browser tests, as real processes: the dev identity provider,
 * the four services verifying its tokens through `OIDC_*` exactly as they would a production
 * issuer's (both from `startCluster`), and the console server, all on free ports over TLS with a
 * fresh dev PKI. Run by `global-setup.ts`:
 *
 *   node --conditions=source --import tsx test/browser/cluster-main.ts <state.json>
 *
 * It writes {@link BrowserClusterState} to `<state.json>` once everything serves, prints `ready`,
 * and stops everything on SIGTERM/SIGINT. The browser tests themselves import nothing of the
 * workspace: they speak to these processes only as a browser or a shell would.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, writeFileSync } from "node:fs";
import { request } from "node:https";
import { join } from "node:path";
import { DEV_IDP_FILES, readDevUsers } from "../../tools/dev-idp/state.js";
import { freePorts, REPO_ROOT, startCluster } from "../support/cluster.js";
import type { BrowserClusterState } from "./state.js";

const statePath = process.argv[2];
if (!statePath) throw new Error("usage: cluster-main.ts <state.json>");

const [consolePort] = await freePorts(1);
const consoleUrl = `https://localhost:${consolePort}`;
const cluster = await startCluster({ databaseUrl: process.env.LCP_BROWSER_DATABASE_URL || undefined, devIdentityProvider: true, consoleUrl });
const idpState = join(cluster.dataDir, "dev-idp");

const consoleLog = createWriteStream(join(cluster.dataDir, "logs", "console.log"), { flags: "a" });
const consoleProcess: ChildProcess = spawn(process.execPath, ["--conditions=source", "--import", "tsx", join(REPO_ROOT, "apps/console/src/main.ts")], {
  cwd: REPO_ROOT,
  env: {
    // DATA_DIR, HOST and the OIDC_* of the dev identity provider, as the services got them.
    ...cluster.env,
    PORT: String(consolePort),
    PUBLIC_URL: consoleUrl,
    LICENSING_URL: cluster.urls.licensing,
    SIGNING_KEYS_URL: cluster.urls["signing-keys"],
    AUDIT_URL: cluster.urls.audit,
    FLEET_SWEEP_URL: cluster.urls["fleet-sweep"],
    OIDC_CLIENT_ID: "lcp-console",
    OIDC_CLIENT_SECRET_FILE: join(idpState, DEV_IDP_FILES.consoleClientSecret),
    LOG_LEVEL: "info",
  },
  stdio: ["ignore", "pipe", "pipe"],
});
consoleProcess.stdout!.pipe(consoleLog, { end: false });
consoleProcess.stderr!.pipe(consoleLog, { end: false });

let stopping = false;
const stop = async (code: number) => {
  if (stopping) return;
  stopping = true;
  consoleProcess.kill("SIGTERM");
  await new Promise((done) => (consoleProcess.exitCode !== null ? done(null) : consoleProcess.once("exit", done)));
  await cluster.stop();
  process.exit(code);
};
process.once("SIGTERM", () => void stop(0));
process.once("SIGINT", () => void stop(0));
consoleProcess.once("exit", (code, signal) => {
  if (!stopping) {
    console.error(`console exited (${signal ?? code}); see ${join(cluster.dataDir, "logs", "console.log")}`);
    void stop(1);
  }
});

await waitHttp(`${consoleUrl}/healthz`, cluster.caPem, 60_000);

const state: BrowserClusterState = {
  consoleUrl,
  dataDir: cluster.dataDir,
  caPath: cluster.caPath,
  licensingUrl: cluster.urls.licensing,
  users: Object.fromEntries((await readDevUsers(idpState)).map((u) => [u.role, { username: u.username, password: u.password }])),
};
writeFileSync(statePath, JSON.stringify(state, null, 2));
console.log("ready");

/** Polls `url` until it answers 200 (the console's own liveness path). */
async function waitHttp(url: string, caPem: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await new Promise<number>((done) => {
      const req = request(url, { ca: caPem, timeout: 2_000 }, (res) => {
        res.resume();
        done(res.statusCode ?? 0);
      });
      req.once("error", () => done(0));
      req.once("timeout", () => req.destroy());
      req.end();
    });
    if (status === 200) return;
    if (Date.now() > deadline) throw new Error(`${url} did not answer 200 within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
