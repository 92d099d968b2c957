/**
 * Fixtures for the heartbeat suites, on top of support.ts: settings shrunk to seconds, more
 * licensing replicas (or a restart on the same port) over the harness's database, boxes played by
 * the real appliance SDK, and a raw heartbeat stream whose messages a test writes one by one.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import { createAppliance, type Appliance, type DirectiveEvent } from "@lcp/appliance-sdk";
import {
  ApplianceService,
  type HeartbeatRequestSchema,
  type HeartbeatResponse,
} from "@lcp/proto/licensing/v1/appliance_service_pb";
import type { License } from "@lcp/proto/licensing/v1/types_pb";
import { createClient } from "@lcp/rpc";
import { ensureDevAdminIssuer } from "@lcp/tokens";
import { startLicensing, type LicensingApp } from "../src/app.js";
import type { LicensingConfig } from "../src/config.js";
import { expect } from "vitest";
import { snapshot, TEST_ISSUER, type Box, type LicensingHarness } from "./support.js";
import { metricValue, scrapeMetrics } from "@lcp/testing/metrics";

/**
 * Seconds-scale settings: beat every 1 s, GRACE after 2 s of silence, leases valid 5 s, renewed
 * after 2 s. A lease is renewed at the first beat after it is lease_renew_after old, and its
 * `exp` is whole seconds, so grace − renew_after must exceed one interval plus a second.
 */
export const FAST = { heartbeatIntervalMs: 1_000, heartbeatTimeoutMs: 2_000, graceWindowMs: 5_000, leaseRenewAfterMs: 2_000 };

/** Sets the settings (super_admin). */
export async function setSettings(h: LicensingHarness, s: Partial<typeof FAST> = FAST): Promise<void> {
  await h.admin("super_admin").updateSettings({
    settings: {
      ...(s.heartbeatIntervalMs ? { heartbeatInterval: durationFromMs(s.heartbeatIntervalMs) } : {}),
      ...(s.heartbeatTimeoutMs ? { heartbeatTimeout: durationFromMs(s.heartbeatTimeoutMs) } : {}),
      ...(s.graceWindowMs ? { graceWindow: durationFromMs(s.graceWindowMs) } : {}),
      ...(s.leaseRenewAfterMs ? { leaseRenewAfter: durationFromMs(s.leaseRenewAfterMs) } : {}),
    },
  });
}

/** A free TCP port on 127.0.0.1 (to restart licensing where the boxes expect it). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/**
 * Starts another licensing process on the harness's database (same SQLite file or PostgreSQL
 * schema) and signing-keys: a second replica, or the first one restarted on its port.
 */
export async function startReplica(h: LicensingHarness, overrides: Partial<LicensingConfig> = {}): Promise<LicensingApp> {
  const own = await h.pki.service("licensing");
  const dev = await ensureDevAdminIssuer(h.db.dataDir);
  return startLicensing({
    app: "licensing",
    host: "127.0.0.1",
    port: 0,
    dataDir: h.db.dataDir,
    databaseUrl: h.db.databaseUrl,
    databaseSchema: h.db.schema,
    trustDomain: h.pki.trustDomain,
    tls: { certPem: own.certPem, keyPem: own.keyPem, caPem: h.pki.ca.certPem, source: "files" },
    adminTokens: { issuer: dev.issuer, audience: dev.audience, jwks: dev.jwks, rolesClaim: "roles", dev: true },
    logLevel: "silent",
    signingKeysUrl: h.signingKeys.url,
    tokenIssuer: TEST_ISSUER,
    replicaId: `replica-${randomBytes(3).toString("hex")}`,
    now: h.clock.now,
    ...overrides,
  });
}

/** Boxes played by the real SDK, each with its own state file; `stopAll` in teardown. */
export async function createSdkBoxes() {
  const dir = await mkdtemp(join(tmpdir(), "lcp-heartbeat-boxes-"));
  const boxes: Appliance[] = [];
  return {
    async box(h: LicensingHarness, license: License, options: { baseUrl?: string; fingerprint?: string; httpVersion?: "2" | "1.1"; stateFile?: string } = {}) {
      const box = await createAppliance({
        baseUrl: options.baseUrl ?? h.licensing.url,
        caPem: h.pki.ca.certPem,
        licenseId: license.id,
        licenseToken: license.token,
        fingerprint: options.fingerprint ?? `sdk-box-${randomBytes(4).toString("hex")}`,
        stateFile: options.stateFile ?? join(dir, `${randomBytes(6).toString("hex")}.json`),
        issuer: TEST_ISSUER,
        trustDomain: h.pki.trustDomain,
        agentVersion: "sdk-test/2.0",
        backoff: { initialMs: 50, maxMs: 250 },
        evaluateEveryMs: 25,
        ...(options.httpVersion ? { httpVersion: options.httpVersion } : {}),
      });
      boxes.push(box);
      return box;
    },
    /** The folder the state files live in (pass `stateFile` under it to read one back). */
    dir,
    async stopAll() {
      for (const b of boxes.splice(0)) await b.stop().catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export { nextDirective } from "@lcp/testing/appliance";

/** Waits until `cond()` holds, polling every 20 ms. */
export async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

type RequestInit = MessageInitShape<typeof HeartbeatRequestSchema>;

/** A heartbeat stream written by hand: `send` messages, read `responses`, see how it `ended`. */
export interface RawStream {
  send(message: RequestInit): void;
  /** Ends the request side. */
  end(): void;
  /** Every response so far. */
  readonly responses: HeartbeatResponse[];
  /** Resolves with the error the stream ended with (undefined when it ended cleanly). */
  readonly ended: Promise<ConnectError | undefined>;
  abort(): void;
}

/**
 * Opens a Heartbeat stream over mTLS with `box`'s certificate (or another identity). gRPC by
 * default (licensing's raw transport); `protocol: "connect"` goes through the Connect stack.
 */
export function rawStream(h: LicensingHarness, box: Box, baseUrl = h.licensing.url, protocol: "grpc" | "connect" = "grpc"): RawStream {
  const client = createClient(ApplianceService, {
    baseUrl,
    tls: { caPem: h.pki.ca.certPem, certPem: box.activation!.certificatePem, keyPem: box.keyPem },
    retries: 0,
    protocol,
  });
  const queue: RequestInit[] = [];
  let wake: (() => void) | null = null;
  let done = false;
  const abort = new AbortController();
  async function* requests() {
    for (;;) {
      if (queue.length > 0) {
        yield queue.shift()!;
        continue;
      }
      if (done) return;
      await new Promise<void>((r) => (wake = r));
    }
  }
  const responses: HeartbeatResponse[] = [];
  const ended = (async () => {
    try {
      for await (const r of client.heartbeat(requests(), { signal: abort.signal })) responses.push(r);
      return undefined;
    } catch (err) {
      return ConnectError.from(err);
    }
  })();
  const poke = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  return {
    send(m) {
      queue.push(m);
      poke();
    },
    end() {
      done = true;
      poke();
    },
    responses,
    ended,
    abort: () => abort.abort(),
  };
}

/** The hello of `box` for `license`. */
export function helloOf(license: License, box: Box, lastLeaseSeq = 1n): RequestInit {
  return { kind: { case: "hello", value: { licenseId: license.id, fingerprint: box.fingerprint, lastLeaseSeq, agentVersion: "test/1.0" } } };
}

/** A beat. */
export function beat(nonce: bigint): RequestInit {
  return { kind: { case: "beat", value: { nonce } } };
}

/** Reads a gauge or counter from licensing's /metrics (over TLS, no credentials: it is public). */
export async function metric(h: LicensingHarness, name: string, url = h.licensing.url): Promise<number> {
  const value = metricValue(await scrapeMetrics(url, h.pki.ca.certPem), name);
  if (Number.isNaN(value)) throw new Error(`metric ${name} not found`);
  return value;
}

/**
 * Runs `attempt`, then proves the database is as before (after any batched flush would have run).
 * `ignore` masks what the attempt may legitimately change (an audited refusal, last_seen).
 */
export async function writesNothing(
  h: LicensingHarness,
  attempt: () => Promise<void>,
  ignore: (s: Record<string, string>) => Record<string, string> = (s) => s,
): Promise<void> {
  await new Promise((r) => setTimeout(r, 1_200));
  const before = ignore(await snapshot(h));
  await attempt();
  await new Promise((r) => setTimeout(r, 1_200));
  expect(ignore(await snapshot(h))).toEqual(before);
}
