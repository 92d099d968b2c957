/**
 * `startTestServer()`: a real @lcp/rpc server on port 0 over mTLS with the test PKI and a dev
 * admin issuer in a temporary directory, plus typed clients for every kind of caller.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DescService } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import type { ServiceName } from "@lcp/domain";
import { createAdminClient, createClient, createServer, type RpcServer, type ServerOptions } from "@lcp/rpc";
import { createAdminTokenVerifier, ensureDevAdminIssuer } from "@lcp/tokens";
import { createTestPki, type TestPki } from "./pki.js";

/** Options of `startTestServer`: what `createServer` takes, with test defaults for the rest. */
export interface StartTestServerOptions
  extends Partial<Omit<ServerOptions, "name" | "register" | "tls" | "trustDomain" | "port">> {
  /** The app the server plays (its server certificate is `pki.service(name)`). */
  readonly name: ServiceName;
  readonly register: ServerOptions["register"];
  /** Default `await createTestPki()` (shared per process). */
  readonly pki?: TestPki;
  /** Trust the appliance CA on this listener (default true). */
  readonly trustAppliances?: boolean;
}

/** Options of an admin token minted by the test issuer. */
export interface TestTokenOptions {
  /** Default `"test-admin"`. */
  readonly subject?: string;
  /** Default 600. */
  readonly ttlSeconds?: number;
  /** Issue time (e.g. in the past, for an expired token). */
  readonly now?: Date;
}

/** A running test server and clients for each kind of caller. */
export interface TestServer {
  readonly server: RpcServer;
  readonly url: string;
  readonly pki: TestPki;
  /** The temporary directory holding the dev admin issuer. */
  readonly dir: string;
  /** Issuer and audience the server accepts admin tokens for. */
  readonly issuer: { readonly issuer: string; readonly audience: string };
  /** Mints an admin token for these roles from the issuer the server trusts. */
  adminToken(roles: readonly string[], options?: TestTokenOptions): Promise<string>;
  /** A client authenticated by a bearer token with these roles (minted per call). */
  adminClient<T extends DescService>(service: T, roles: readonly string[], options?: TestTokenOptions): Client<T>;
  /** A client with the mTLS certificate of a control-plane service. */
  serviceClient<T extends DescService>(service: T, serviceName: string): Promise<Client<T>>;
  /** A client with an appliance certificate for `deploymentId` (issued by the appliance CA). */
  applianceClient<T extends DescService>(service: T, deploymentId: string): Promise<Client<T>>;
  /** A client with neither certificate nor token (server-authenticated TLS only). */
  anonymousClient<T extends DescService>(service: T): Client<T>;
  /** Closes the server and removes the temporary directory. Idempotent. */
  close(): Promise<void>;
}

/**
 * Starts a server for `name` on 127.0.0.1:0 with the test PKI (platform CA + appliance CA
 * trusted), the dev admin issuer from a fresh temporary directory, and no retries in clients
 * (so tests see the first failure). Close it in `afterAll`/`afterEach`.
 */
export async function startTestServer(options: StartTestServerOptions): Promise<TestServer> {
  const { pki: givenPki, name, register, trustAppliances, ...overrides } = options;
  const pki = givenPki ?? (await createTestPki());
  const dir = await mkdtemp(join(tmpdir(), "lcp-test-server-"));
  const issuer = await ensureDevAdminIssuer(dir);
  const serverCert = await pki.service(name);
  const server = await createServer({
    name,
    port: 0,
    trustDomain: pki.trustDomain,
    tls: { certPem: serverCert.certPem, keyPem: serverCert.keyPem, caPem: pki.ca.certPem },
    applianceCa: trustAppliances === false ? [] : [pki.applianceCa.certPem],
    adminTokens: createAdminTokenVerifier({ issuer: issuer.issuer, audience: issuer.audience, jwks: issuer.jwks }),
    shutdownGraceMs: 2_000,
    register,
    ...overrides,
  });
  const caPem = pki.ca.certPem;
  const adminToken = (roles: readonly string[], opts: TestTokenOptions = {}) =>
    issuer.mint({ subject: opts.subject ?? "test-admin", roles, ttlSeconds: opts.ttlSeconds ?? 600, now: opts.now });

  let closed: Promise<void> | undefined;
  return {
    server,
    url: server.url,
    pki,
    dir,
    issuer: { issuer: issuer.issuer, audience: issuer.audience },
    adminToken,
    adminClient: (service, roles, opts) =>
      createAdminClient(service, { baseUrl: server.url, caPem, token: () => adminToken(roles, opts), retries: 0 }),
    async serviceClient(service, serviceName) {
      const cert = await pki.service(serviceName);
      return createClient(service, {
        baseUrl: server.url,
        tls: { caPem, certPem: cert.certPem, keyPem: cert.keyPem },
        retries: 0,
      });
    },
    async applianceClient(service, deploymentId) {
      const cert = await pki.appliance(deploymentId);
      return createClient(service, {
        baseUrl: server.url,
        tls: { caPem, certPem: cert.certPem, keyPem: cert.keyPem },
        retries: 0,
      });
    },
    anonymousClient: (service) => createClient(service, { baseUrl: server.url, tls: { caPem }, retries: 0 }),
    close() {
      closed ??= (async () => {
        await server.close();
        await rm(dir, { recursive: true, force: true });
      })();
      return closed;
    },
  };
}
