/**
 * The whole system for the console's browser tests, as real processes: the dev identity provider
 * (oidc-provider, in this process), the four services verifying its tokens through `OIDC_*`
 * exactly as they would a production issuer's, and the console server, all on free ports over
 * TLS with a fresh dev PKI. Run by `global-setup.ts`:
 *
 *   node --conditions=source --import tsx test/browser/cluster-main.ts <state.json>
 *
 * It writes {@link BrowserClusterState} to `<state.json>` once everything serves, prints `ready`,
 * and stops everything on SIGTERM/SIGINT. The browser tests themselves import nothing of the
 * workspace: they speak to these processes only as a browser or a shell would.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureDevPki, DEV_PKI_SERVICES } from "@lcp/pki";
import { startDevIdentityProvider } from "../../tools/dev-idp/provider.js";
import { freePorts, prepareDataDir, REPO_ROOT, startCluster } from "../support/cluster.js";
import type { BrowserClusterState } from "./state.js";

const statePath = process.argv[2];
if (!statePath) throw new Error("usage: cluster-main.ts <state.json>");

const dataDir = mkdtempSync(join(tmpdir(), "lcp-browser-"));
mkdirSync(join(dataDir, "logs"), { recursive: true });
await prepareDataDir(dataDir);
const pki = await ensureDevPki({ dir: join(dataDir, "pki"), services: [...DEV_PKI_SERVICES] });
const [idpPort, consolePort] = await freePorts(2);
const consoleUrl = `https://localhost:${consolePort}`;
const idpTls = pki.services["dev-idp"]!;
const idp = await startDevIdentityProvider({
  port: idpPort!,
  tls: { certPem: idpTls.certPem, keyPem: idpTls.keyPem },
  stateDir: join(dataDir, "dev-idp"),
  consoleRedirectUris: [`${consoleUrl}/auth/callback`],
  consolePostLogoutRedirectUris: [`${consoleUrl}/auth/signed-out`],
});
const oidcEnv = { OIDC_ISSUER: idp.issuer, OIDC_AUDIENCE: idp.audience, OIDC_JWKS_URL: idp.jwksUrl, OIDC_CA_FILE: pki.caPath };
// The services read OIDC_* at start, so they start only now that the issuer is known.
const cluster = await startCluster({ dataDir, databaseUrl: process.env.LCP_BROWSER_DATABASE_URL || undefined, env: oidcEnv });

const consoleLog = createWriteStream(join(cluster.dataDir, "logs", "console.log"), { flags: "a" });
const consoleProcess: ChildProcess = spawn(process.execPath, ["--conditions=source", "--import", "tsx", join(REPO_ROOT, "apps/console/src/main.ts")], {
  cwd: REPO_ROOT,
  env: {
    ...cluster.env,
    ...oidcEnv,
    PORT: String(consolePort),
    PUBLIC_URL: consoleUrl,
    LICENSING_URL: cluster.urls.licensing,
    SIGNING_KEYS_URL: cluster.urls["signing-keys"],
    AUDIT_URL: cluster.urls.audit,
    FLEET_SWEEP_URL: cluster.urls["fleet-sweep"],
    OIDC_CLIENT_ID: idp.consoleClient.clientId,
    OIDC_CLIENT_SECRET_FILE: idp.consoleClient.secretFile,
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
  await idp.close().catch(() => undefined);
  await cluster.stop();
  if (!process.env.LCP_E2E_KEEP) rmSync(dataDir, { recursive: true, force: true });
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
  users: Object.fromEntries(idp.users.map((u) => [u.role, { username: u.username, password: u.password }])),
};
writeFileSync(statePath, JSON.stringify(state, null, 2));
console.log("ready");

/** Polls `url` until it answers 200 (the console's own liveness path). */
async function waitHttp(url: string, caPem: string, timeoutMs: number): Promise<void> {
  const { request } = await import("node:https");
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
