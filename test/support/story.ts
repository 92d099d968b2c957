/**
 * Helpers shared by the e2e stories: appliances built on the real SDK against a cluster, polling
 * until a condition holds, and reading the audit trail in the order it was written.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { durationFromMs, durationMs } from "@bufbuild/protobuf/wkt";
import { createAppliance, type Appliance, type DirectiveEvent } from "@lcp/appliance-sdk";
import { AuditService, Outcome, ActorKind, type AuditEvent } from "@lcp/proto/audit/v1/audit_service_pb";
import { LicensingService } from "@lcp/proto/licensing/v1/licensing_service_pb";
import type { HeartbeatStatus, License } from "@lcp/proto/licensing/v1/types_pb";
import type { Cluster } from "./cluster.js";

/** The `iss` licence and lease tokens carry (licensing's and signing-keys' default TOKEN_ISSUER). */
export const TOKEN_ISSUER = "https://lcp.local/licensing";

/** An appliance embedding `@lcp/appliance-sdk`, with its state file under `<dataDir>/boxes/`. */
export async function applianceFor(cluster: Cluster, license: License, fingerprint: string): Promise<Appliance> {
  const dir = join(cluster.dataDir, "boxes");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return createAppliance({
    baseUrl: cluster.urls.licensing,
    caPem: cluster.caPem,
    licenseId: license.id,
    licenseToken: license.token,
    fingerprint,
    // One file per licence and box: a box activating another licence starts from a clean state.
    stateFile: join(dir, `${fingerprint}-${license.id}.json`),
    issuer: TOKEN_ISSUER,
    agentVersion: "e2e-box/1",
    // Reconnect quickly in tests (default backoff climbs to 60 s).
    backoff: { initialMs: 200, maxMs: 2_000 },
  });
}

/** Polls `probe` every 100 ms until it returns something other than undefined (or throws after `timeoutMs`). */
export async function eventually<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${(lastError as Error).message})` : ""}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The whole audit trail, oldest first (ListEvents pages newest first). */
export async function auditTrail(cluster: Cluster): Promise<AuditEvent[]> {
  const audit = cluster.adminClient(AuditService, "auditor");
  const events: AuditEvent[] = [];
  let pageToken = "";
  do {
    const page = await audit.listEvents({ pageSize: 500, pageToken });
    events.push(...page.events);
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  return events.sort((a, b) => Number(a.seq - b.seq));
}

/** One audit event as a readable line, for comparing trails: `action outcome actor-kind:actor-id resource-type`. */
export function describeEvent(e: AuditEvent): string {
  return `${e.action} ${Outcome[e.outcome]} ${ActorKind[e.actor?.kind ?? 0]}:${e.actor?.id ?? ""} ${e.resource?.type ?? ""}`;
}

/**
 * Settings in seconds instead of minutes and weeks, so heartbeats, renewals, grace and lockdown
 * happen inside a test (grace − renew_after exceeds one interval + 1 s, so a beating box never
 * sees its lease run low).
 */
export const FAST_SETTINGS = { heartbeatIntervalMs: 1_000, heartbeatTimeoutMs: 2_000, graceWindowMs: 5_000, leaseRenewAfterMs: 2_000 };

/** Shrinks licensing's settings (UpdateSettings as super_admin, as an operator would on licensing/settings). */
export async function shrinkSettings(cluster: Cluster, s: typeof FAST_SETTINGS = FAST_SETTINGS): Promise<void> {
  await cluster.adminClient(LicensingService, "super_admin").updateSettings({
    settings: {
      heartbeatInterval: durationFromMs(s.heartbeatIntervalMs),
      heartbeatTimeout: durationFromMs(s.heartbeatTimeoutMs),
      graceWindow: durationFromMs(s.graceWindowMs),
      leaseRenewAfter: durationFromMs(s.leaseRenewAfterMs),
    },
  });
}

/** The control plane's heartbeat row for a deployment (ListHeartbeats, screen licensing/heartbeats), with its lag in ms. */
export async function heartbeatOf(cluster: Cluster, deploymentId: string): Promise<(HeartbeatStatus & { lagMs: number }) | undefined> {
  const { heartbeats } = await cluster.adminClient(LicensingService, "support").listHeartbeats({ deploymentId });
  const row = heartbeats.find((h) => h.deploymentId === deploymentId);
  return row && Object.assign(row, { lagMs: row.lag ? durationMs(row.lag) : Number.POSITIVE_INFINITY });
}

export { nextDirective } from "@lcp/testing/appliance";
