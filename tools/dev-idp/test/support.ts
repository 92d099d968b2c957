/**
 * Test support: a real development identity provider on port 0 over HTTPS, with the test PKI's
 * certificate and a state folder of its own (removed by `close()`).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestPki, type TestPki } from "@lcp/testing/pki";
import { startDevIdentityProvider, type DevIdentityProvider, type StartDevIdentityProviderOptions } from "../provider.js";

/** The console's redirect URI every test provider registers. */
export const CONSOLE_REDIRECT_URI = "https://localhost:7440/auth/callback";
/** The console's post-sign-out URI every test provider registers. */
export const CONSOLE_SIGNED_OUT_URI = "https://localhost:7440/auth/signed-out";

/** A provider under test, the PKI its certificate chains to, and where its state lives. */
export interface TestIdp {
  readonly idp: DevIdentityProvider;
  readonly pki: TestPki;
  readonly caPem: string;
  readonly stateDir: string;
  /** Stops the provider (keeping the state folder, for restart tests). */
  stop(): Promise<void>;
  /** Starts it again on the same state folder (a new port). */
  restart(): Promise<DevIdentityProvider>;
  /** Stops it and removes the state folder. */
  close(): Promise<void>;
}

/** Starts a provider; `overrides` for TTLs and the like. */
export async function startTestIdp(overrides: Partial<StartDevIdentityProviderOptions> = {}): Promise<TestIdp> {
  const pki = await createTestPki();
  const cert = await pki.service("dev-idp");
  const stateDir = overrides.stateDir ?? (await mkdtemp(join(tmpdir(), "lcp-dev-idp-")));
  const start = () =>
    startDevIdentityProvider({
      port: 0,
      tls: { certPem: cert.certPem, keyPem: cert.keyPem },
      stateDir,
      consoleRedirectUris: [CONSOLE_REDIRECT_URI],
      consolePostLogoutRedirectUris: [CONSOLE_SIGNED_OUT_URI],
      ...overrides,
    });
  let idp = await start();
  let running = true;
  const handle: TestIdp = {
    get idp() {
      return idp;
    },
    pki,
    caPem: pki.ca.certPem,
    stateDir,
    async stop() {
      if (running) await idp.close();
      running = false;
    },
    async restart() {
      await handle.stop();
      idp = await start();
      running = true;
      return idp;
    },
    async close() {
      await handle.stop();
      await rm(stateDir, { recursive: true, force: true });
    },
  };
  return handle;
}
