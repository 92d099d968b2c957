/**
 * Backup → wipe → restore, on each driver, with the commands an operator runs: `npm run backup`
 * while the control plane serves and a box streams; every app stopped and its database wiped;
 * `npm run restore` (refused into a non-empty target without --force); the apps started again.
 * Every deployment, licence, signing key and audit event is back, VerifyChain is ok, and the box
 * that streamed before the backup streams again after the restore, taking new leases even though
 * it had taken one the restored database never saw.
 */
import { readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import type { Appliance } from "@lcp/appliance-sdk";
import { AuditService } from "@lcp/proto/audit/v1/audit_service_pb";
import { LicensingService } from "@lcp/proto/licensing/v1/licensing_service_pb";
import { SigningKeyService } from "@lcp/proto/signing/v1/signing_key_service_pb";
import { DeploymentKind, DeploymentState, DirectiveType } from "@lcp/proto/licensing/v1/types_pb";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { APPS, e2eDatabases, startCluster, type Cluster } from "../support/cluster.js";
import { runTs } from "../support/processes.js";
import { applianceFor, auditTrail, eventually } from "../support/story.js";

/** Runs `npm run <script>` (its node command, as package.json spells it) with the cluster's environment. */
function npmRun(cluster: Cluster, script: "backup" | "restore", args: string[]) {
  return runTs(`tools/ops/${script}.ts`, args, { env: { ...cluster.env }, timeoutMs: 120_000 });
}

describe.each(e2eDatabases())("backup, wipe, restore ($name)", ({ name, databaseUrl }) => {
  let cluster: Cluster;
  let box: Appliance;
  let boxDeployment: string;
  const seqs: number[] = [];
  const rejected: string[] = [];
  let before: { deployments: string[]; licenses: string[]; keys: string[]; events: string[] };

  const snapshot = async () => {
    const support = cluster.adminClient(LicensingService, "support");
    const deployments = (await support.listDeployments({ pageSize: 500 })).deployments.map((d) => `${d.id} ${DeploymentState[d.state]}`).sort();
    const licenses = (await support.listLicenses({ pageSize: 500 })).licenses.map((l) => `${l.id} ${l.deploymentId} ${l.status}`).sort();
    const keys = (await cluster.adminClient(SigningKeyService, "super_admin").listKeys({ pageSize: 500 })).keys.map((k) => `${k.kid} ${k.state}`).sort();
    return { deployments, licenses, keys };
  };
  const streaming = async () => {
    const { heartbeats } = await cluster.adminClient(LicensingService, "support").listHeartbeats({ deploymentId: boxDeployment });
    return heartbeats.some((h) => h.deploymentId === boxDeployment && h.connected) && box.state().state === "ACTIVE" ? true : undefined;
  };
  const renewLease = async () => {
    const from = box.status().leaseSeq!;
    await cluster.adminClient(LicensingService, "support").sendDirective({ deploymentId: boxDeployment, type: DirectiveType.RENEW_LEASE, reason: "backup test" });
    await eventually("the box to take a newer lease", () => (box.status().leaseSeq! > from ? true : undefined), 15_000);
    seqs.push(box.status().leaseSeq!);
  };

  beforeAll(async () => {
    // Four apps compiling at once on 2 shared cores: a longer start budget than the default.
    cluster = await startCluster({ databaseUrl, startTimeoutMs: 90_000 });
    // Beats every second; timeout and grace far beyond the restore, so the outage shows as GRACE at most.
    await cluster.adminClient(LicensingService, "super_admin").updateSettings({
      settings: { heartbeatInterval: durationFromMs(1_000), heartbeatTimeout: durationFromMs(120_000), graceWindow: durationFromMs(600_000), leaseRenewAfter: durationFromMs(300_000) },
    });
  }, 120_000);
  afterAll(async () => {
    await box?.stop().catch(() => undefined);
    await cluster?.stop();
  }, 60_000);

  it("backs up a serving control plane, a box streaming, into a directory with a manifest", async () => {
    const support = cluster.adminClient(LicensingService, "support");
    for (let i = 0; i < 4; i++) await support.provisionDeployment({ name: `site-${i}`, customer: "st-mary", kind: DeploymentKind.ON_PREM });
    const { deployment, license } = await support.provisionDeployment({ name: "streaming-box", customer: "st-mary", kind: DeploymentKind.ON_PREM });
    boxDeployment = deployment!.id;
    box = await applianceFor(cluster, license!, "backup-mainboard");
    box.on("lease-rejected", (e) => rejected.push(e.code));
    await box.activate();
    box.start();
    await eventually("the box streaming", streaming, 30_000);
    await cluster.adminClient(SigningKeyService, "super_admin").rotateKeys({});
    await renewLease();
    // Every event so far delivered to audit, so the comparison after the restore is exact.
    await eventually("audit to settle", async () => {
      const n = (await auditTrail(cluster)).length;
      await new Promise((r) => setTimeout(r, 1_500));
      return (await auditTrail(cluster)).length === n ? true : undefined;
    }, 30_000);
    before = { ...(await snapshot()), events: (await auditTrail(cluster)).map((e) => e.id) };
    expect(before.deployments.length).toBe(5);
    expect(before.keys.length).toBeGreaterThanOrEqual(3);

    const out = await npmRun(cluster, "backup", [join(cluster.dataDir, "backup-1")]);
    expect(out.stderr).toBe("");
    expect([out.code, out.stdout]).toEqual([0, expect.stringMatching(new RegExp(`^backup: ${name}, licensing, signing-keys, fleet-sweep, audit \\(\\d+ bytes\\) written to`))]);
    expect(readdirSync(join(cluster.dataDir, "backup-1")).sort()).toEqual(
      ["manifest.json", ...(name === "sqlite" ? ["audit.sqlite", "fleet-sweep.sqlite", "licensing.sqlite", "signing-keys.sqlite"] : ["audit.dump", "fleet_sweep.dump", "licensing.dump", "signing_keys.dump"])].sort(),
    );
    // The box takes a lease the backup does not know about.
    await renewLease();
    const again = await npmRun(cluster, "backup", [join(cluster.dataDir, "backup-1")]);
    expect([again.code, again.stderr]).toEqual([1, expect.stringMatching(/already exists: a backup is written into a new directory/)]);
  }, 120_000);

  it("restores into the wiped databases, refusing a non-empty target without --force", async () => {
    for (const app of APPS) await cluster.kill(app, "SIGTERM");
    const refused = await npmRun(cluster, "restore", [join(cluster.dataDir, "backup-1")]);
    expect([refused.code, refused.stderr]).toEqual([1, expect.stringMatching(/already holds .*: stop every app and pass --force/)]);
    const usage = await npmRun(cluster, "restore", []);
    expect([usage.code, usage.stderr]).toEqual([2, expect.stringMatching(/name exactly one backup directory/)]);

    if (databaseUrl) {
      const client = new pg.Client({ connectionString: cluster.databaseUrl });
      await client.connect();
      try {
        for (const schema of ["licensing", "signing_keys", "audit", "fleet_sweep"]) await client.query(`drop schema "${schema}" cascade`);
      } finally {
        await client.end();
      }
    } else {
      for (const f of readdirSync(cluster.dataDir).filter((f) => /\.sqlite(-wal|-shm)?$/.test(f))) rmSync(join(cluster.dataDir, f));
    }
    const restored = await npmRun(cluster, "restore", [join(cluster.dataDir, "backup-1")]);
    expect(restored.stderr).toBe("");
    expect([restored.code, restored.stdout]).toEqual([0, expect.stringMatching(new RegExp(`^restore: licensing, signing-keys, fleet-sweep, audit restored from the ${name} backup of `))]);
    await Promise.all(APPS.map((app) => cluster.start(app)));
  }, 120_000);

  it("brings back every deployment, licence, key and audit event, with the audit chain intact", async () => {
    expect(await snapshot()).toEqual({ deployments: before.deployments, licenses: before.licenses, keys: before.keys });
    const events = new Set((await auditTrail(cluster)).map((e) => e.id));
    for (const id of before.events) expect(events.has(id), `audit event ${id}`).toBe(true);
    const verdict = await cluster.adminClient(AuditService, "auditor").verifyChain({});
    expect(verdict).toMatchObject({ ok: true, firstBrokenSeq: 0n });
    expect(verdict.checked).toBe(verdict.headSeq);
  }, 60_000);

  it("the box that streamed before the backup streams after the restore, and takes new leases", async () => {
    await eventually("the box streaming again", streaming, 30_000);
    await renewLease();
    expect(seqs[2]!).toBeGreaterThan(seqs[1]!);
    expect(rejected).toEqual([]);
    expect(box.state().state).toBe("ACTIVE");
  }, 60_000);
});
