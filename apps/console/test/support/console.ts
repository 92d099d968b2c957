/**
 * Test support for the console: the real server (`startConsole`) on port 0 over HTTPS with the
 * test PKI, signing in with a real OpenID provider (./test-idp.ts), a tiny built web app in a
 * temporary folder, a clock the test can move, and the log lines it wrote.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { createTestPki, type TestPki } from "@lcp/testing/pki";
import pino from "pino";
import { startConsole, type ConsoleApp } from "../../src/app.js";
import { DEFAULT_MAX_SESSIONS, DEFAULT_SESSION_IDLE_TIMEOUT_MS, DEFAULT_SESSION_MAX_AGE_MS, type ConsoleConfig, type UpstreamUrls } from "../../src/config.js";
import { createTestBrowser, type TestBrowser } from "./browser.js";
import { startTestIdp, TEST_CLIENT_ID, type TestIdp } from "./test-idp.js";

/** The fake built app: what `/licensing` and `/assets/x.js` serve. */
export const INDEX_HTML = '<!doctype html><html><head><script type="module" src="/assets/x.js"></script></head><body><div id="root"></div></body></html>\n';
export const ASSET_JS = 'console.log("console app");\n';

/** A console under test and everything around it. */
export interface ConsoleUnderTest {
  readonly app: ConsoleApp;
  readonly idp: TestIdp;
  readonly pki: TestPki;
  readonly browser: TestBrowser;
  /** The fake web app folder (`index.html`, `assets/x.js`, and `secret.txt` beside them). */
  readonly webRoot: string;
  /** Moves the console's clock forward. */
  advance(ms: number): void;
  /** The console's clock (ms). */
  now(): number;
  /** Every log line the console wrote so far. */
  logs(): string;
  close(): Promise<void>;
}

/** Options of {@link startConsoleUnderTest}. */
export interface ConsoleUnderTestOptions {
  /** Where API calls go (default: nothing listening). */
  readonly upstreams?: Partial<UpstreamUrls>;
  /** Called with the provider before the console starts (e.g. to start a service trusting it). */
  readonly beforeConsole?: (idp: TestIdp, pki: TestPki) => Promise<Partial<UpstreamUrls> | void>;
  readonly config?: Partial<ConsoleConfig>;
  /** No index.html in the web root (an unbuilt console). */
  readonly unbuilt?: boolean;
  /**
   * Replicas: the provider and PKI of a console already running (neither is closed with this one,
   * and the caller registers the shared public URL with the provider).
   */
  readonly shared?: { readonly idp: TestIdp; readonly pki: TestPki };
}

/** Starts a provider, a console that signs in with it, and a browser trusting the test CA. */
export async function startConsoleUnderTest(options: ConsoleUnderTestOptions = {}): Promise<ConsoleUnderTest> {
  const pki = options.shared?.pki ?? (await createTestPki());
  const idp = options.shared?.idp ?? (await startTestIdp(pki));
  const upstreamsFromHook = (await options.beforeConsole?.(idp, pki)) ?? {};
  const root = await mkdtemp(join(tmpdir(), "lcp-console-web-"));
  const webRoot = join(root, "web");
  await mkdir(join(webRoot, "assets"), { recursive: true });
  if (!options.unbuilt) await writeFile(join(webRoot, "index.html"), INDEX_HTML);
  await writeFile(join(webRoot, "assets", "x.js"), ASSET_JS);
  await writeFile(join(webRoot, "secret.txt"), "not an asset\n");
  await writeFile(join(root, "outside.txt"), "outside the web root\n");

  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  let offset = 0;
  const cert = await pki.service("console");
  const unreachable = "https://localhost:9";
  const app = await startConsole({
    host: "127.0.0.1",
    port: 0,
    dataDir: root,
    tls: { certPem: cert.certPem, keyPem: cert.keyPem, caPem: pki.ca.certPem, source: "files" },
    upstreams: { licensing: unreachable, signingKeys: unreachable, audit: unreachable, fleetSweep: unreachable, ...options.upstreams, ...upstreamsFromHook },
    oidc: { issuer: idp.issuer, clientId: TEST_CLIENT_ID, clientSecret: { value: idp.clientSecret }, caPem: pki.ca.certPem, scopes: "openid profile", rolesClaim: "roles" },
    sessionIdleTimeoutMs: DEFAULT_SESSION_IDLE_TIMEOUT_MS,
    sessionMaxAgeMs: DEFAULT_SESSION_MAX_AGE_MS,
    maxSessions: DEFAULT_MAX_SESSIONS,
    webRoot,
    logLevel: "info",
    logger: pino({ level: "info" }, sink),
    now: () => Date.now() + offset,
    // SQLite in the temporary folder unless the test names a database.
    sessionKey: { kind: "dev", dataDir: root },
    ...options.config,
  });
  if (!options.shared) await idp.registerConsole(app.publicUrl);
  return {
    app,
    idp,
    pki,
    browser: createTestBrowser(pki.ca.certPem),
    webRoot,
    advance: (ms) => void (offset += ms),
    now: () => Date.now() + offset,
    logs: () => lines.join(""),
    async close() {
      await app.close();
      if (!options.shared) await idp.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** The headers of a Connect unary JSON call from the web app. */
export function connectHeaders(csrfToken: string | undefined, extra: Record<string, string> = {}): Record<string, string> {
  return {
    "content-type": "application/json",
    "connect-protocol-version": "1",
    ...(csrfToken === undefined ? {} : { "x-csrf-token": csrfToken }),
    ...extra,
  };
}

/** A real audit service trusting the test provider's access tokens, for forwarding tests. */
export interface AuditUnderTest {
  readonly url: string;
  close(): Promise<void>;
}

/** Starts the audit app (SQLite in a temporary folder) accepting admin tokens from `idp`. */
export async function startAuditTrusting(idp: TestIdp, pki: TestPki): Promise<AuditUnderTest> {
  const [{ startAudit }, { testDatabases }] = await Promise.all([import("@lcp/audit/app"), import("@lcp/testing/db")]);
  const db = testDatabases()[0]!.options("audit");
  const cert = await pki.service("audit");
  const app = await startAudit({
    app: "audit",
    host: "127.0.0.1",
    port: 0,
    trustDomain: pki.trustDomain,
    tls: { certPem: cert.certPem, keyPem: cert.keyPem, caPem: pki.ca.certPem, source: "files" },
    adminTokens: { issuer: idp.issuer, audience: idp.audience, jwks: idp.jwks, rolesClaim: "roles", dev: false },
    dataDir: db.dataDir,
    logLevel: "silent",
    maxClockSkewMs: 5 * 60_000,
    logger: pino({ level: "silent" }),
    shutdownGraceMs: 2_000,
  });
  return {
    url: app.url,
    async close() {
      await app.close();
      await db.cleanup();
    },
  };
}
