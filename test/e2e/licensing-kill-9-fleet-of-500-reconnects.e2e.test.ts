/**
 * Fault: `kill -9` of licensing while 500 boxes stream. The boxes are played by
 * `tools/appliance-sim` in a process of its own (as a fleet would be: not inside the test runner,
 * which on 2 cores would otherwise starve licensing's restart), each with the SDK's default
 * reconnect backoff. The crash drops every stream; every box runs on its lease (never LOCKED),
 * redials, and is ACTIVE and connected again within {@link RECOVERY_BOUND_MS} of the kill; the
 * plane never saw them silent for a heartbeat timeout, so a sweep afterwards makes no transition
 * and the audit trail holds no transition events for them at all (only their one activation).
 *
 * The measured phases (time to SERVING after restart, time until all boxes ACTIVE + connected)
 * are printed as `kill-9 fleet:` lines so a run reports them.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { AuditService } from "@lcp/proto/audit/v1/audit_service_pb";
import { LicensingService } from "@lcp/proto/licensing/v1/licensing_service_pb";
import { FleetSweepService, SweepStatus } from "@lcp/proto/fleet/v1/fleet_sweep_service_pb";
import { DeploymentKind, DeploymentState } from "@lcp/proto/licensing/v1/types_pb";
import { REPO_ROOT, e2eDatabases, startCluster, type Cluster } from "../support/cluster.js";
import { auditTrail, eventually } from "../support/story.js";

/** Boxes in the simulated fleet: 500, the fleet the fault goal names. */
const BOXES = Number(process.env.LCP_E2E_KILL9_FLEET ?? 500);
/** From the kill to every box ACTIVE and connected again. */
const RECOVERY_BOUND_MS = 60_000;

/** One `t=..s ACTIVE n GRACE n SUSPENDED n LOCKED n UNACTIVATED n connected c/N` line of the sim, with when it was read. */
interface Counts {
  at: number;
  active: number;
  grace: number;
  suspended: number;
  locked: number;
  unactivated: number;
  connected: number;
  total: number;
}
const COUNTS = /^t=\d+s ACTIVE (\d+) GRACE (\d+) SUSPENDED (\d+) LOCKED (\d+) UNACTIVATED (\d+) connected (\d+)\/(\d+)/;

// One driver only (PostgreSQL when DATABASE_URL is set, as in CI; else SQLite): at ~100 s a run,
// both would take a sixth of the suite's budget, and the 60-box kill -9 test covers both drivers.
describe.each(e2eDatabases().slice(-1))("kill -9 of licensing under a fleet of simulated boxes ($name)", ({ name, databaseUrl }) => {
  let cluster: Cluster;
  let sim: ChildProcess | undefined;
  let simExited: Promise<void> | undefined;
  const lines: Counts[] = [];
  const simOutput: string[] = [];
  const fleet: Array<{ deploymentId: string; licenseId: string }> = [];
  const timings: Record<string, number> = {};

  /** Resolves with the first sim line read after `since` for which `ok` holds. */
  const simReports = (what: string, since: number, ok: (c: Counts) => boolean, timeoutMs: number) =>
    eventually(`the sim to report ${what}`, () => lines.find((c) => c.at >= since && ok(c)), timeoutMs).catch((err: Error) => {
      throw new Error(`${err.message}; last sim lines:\n${simOutput.slice(-8).join("\n")}`);
    });
  const allUp = (c: Counts) => c.active === BOXES && c.connected === BOXES && c.total === BOXES;

  beforeAll(async () => {
    cluster = await startCluster({ databaseUrl });
    // Beats every 5 s keep 500 streams cheap; timeout and grace far longer than a licensing
    // restart, so the crash changes no derived state on either side.
    await cluster.adminClient(LicensingService, "super_admin").updateSettings({
      settings: { heartbeatInterval: durationFromMs(5_000), heartbeatTimeout: durationFromMs(120_000), graceWindow: durationFromMs(600_000), leaseRenewAfter: durationFromMs(300_000) },
    });
  }, 120_000);

  afterAll(async () => {
    if (sim && sim.exitCode === null && sim.signalCode === null) {
      const force = setTimeout(() => sim?.kill("SIGKILL"), 10_000);
      sim.stdin?.end("quit\n");
      await simExited;
      clearTimeout(force);
    }
    await cluster?.stop();
  }, 60_000);

  it(`provisions ${BOXES} deployments and the simulated boxes all activate and stream`, async () => {
    const support = cluster.adminClient(LicensingService, "support");
    let started = Date.now();
    // Parallel in batches: each provision is an audited change with an auto-issued licence.
    const licenses: string[] = [];
    for (let i = 0; i < BOXES; i += 50) {
      const made = await Promise.all(
        Array.from({ length: Math.min(50, BOXES - i) }, (_, j) =>
          support.provisionDeployment({ name: `fleet-${i + j}`, customer: "st-mary", kind: DeploymentKind.ON_PREM }),
        ),
      );
      for (const { deployment, license } of made) {
        fleet.push({ deploymentId: deployment!.id, licenseId: license!.id });
        licenses.push(JSON.stringify({ licenseId: license!.id, licenseToken: license!.token }));
      }
    }
    timings.provisionMs = Date.now() - started;
    const licensesFile = join(cluster.dataDir, "fleet-licenses.jsonl");
    writeFileSync(licensesFile, `${licenses.join("\n")}\n`);

    // The fleet in a process of its own, started the way an operator starts it.
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined && k !== "NODE_OPTIONS" && !k.startsWith("VITEST")) env[k] = v;
    started = Date.now();
    sim = spawn(
      process.execPath,
      ["--conditions=source", "--import", "tsx", join(REPO_ROOT, "tools/appliance-sim/main.ts"),
        "--licensing", cluster.urls.licensing, "--ca", cluster.caPath, "--licenses-file", licensesFile,
        "--count", String(BOXES), "--state-dir", join(cluster.dataDir, "fleet"), "--quiet"],
      { cwd: REPO_ROOT, env, stdio: ["pipe", "pipe", "pipe"] },
    );
    const child = sim;
    simExited = new Promise((done) => child.once("exit", () => done()));
    const record = (line: string) => {
      simOutput.push(line);
      if (simOutput.length > 200) simOutput.shift();
      const m = COUNTS.exec(line);
      if (!m) return;
      const [active, grace, suspended, locked, unactivated, connected, total] = m.slice(1).map(Number) as [number, number, number, number, number, number, number];
      lines.push({ at: Date.now(), active, grace, suspended, locked, unactivated, connected, total });
    };
    createInterface({ input: child.stdout! }).on("line", record);
    createInterface({ input: child.stderr! }).on("line", (l) => record(`stderr: ${l}`));

    await simReports(`ACTIVE ${BOXES} connected ${BOXES}/${BOXES}`, started, allUp, 150_000);
    timings.activateMs = Date.now() - started;
    // The plane agrees: every deployment ACTIVE with a connected stream.
    await eventually("every box connected in ListHeartbeats", async () => {
      const connected = new Set<string>();
      let pageToken = "";
      do {
        const page = await support.listHeartbeats({ pageSize: 500, pageToken });
        for (const r of page.heartbeats) if (r.connected) connected.add(r.deploymentId);
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      return fleet.every((f) => connected.has(f.deploymentId)) ? true : undefined;
    }, 30_000);
  }, 240_000);

  it(`every box rides out kill -9 of licensing and is ACTIVE and connected again within ${RECOVERY_BOUND_MS / 1000} s, never LOCKED`, async () => {
    const killedAt = Date.now();
    const exit = await cluster.kill("licensing", "SIGKILL");
    expect(exit.signal).toBe("SIGKILL");
    // The sim notices: streams drop (connected falls) while the boxes run on their leases.
    await simReports("its streams dropped", killedAt, (c) => c.connected < BOXES, 15_000);

    const restartAt = Date.now();
    await cluster.start("licensing");
    timings.servingMs = Date.now() - restartAt;
    const up = await simReports(`all ${BOXES} back`, Date.now(), allUp, RECOVERY_BOUND_MS);
    timings.recoveredAfterKillMs = up.at - killedAt;
    timings.recoveredAfterServingMs = up.at - (restartAt + timings.servingMs);
    timings.maxGrace = Math.max(...lines.filter((c) => c.at >= killedAt).map((c) => c.grace));
    console.log(
      `kill-9 fleet (${name}): ${BOXES} boxes — provision ${timings.provisionMs} ms, all ACTIVE+connected after sim start ${timings.activateMs} ms; ` +
        `licensing SERVING ${timings.servingMs} ms after restart; all ACTIVE+connected ${timings.recoveredAfterKillMs} ms after the kill ` +
        `(${timings.recoveredAfterServingMs} ms after SERVING); at most ${timings.maxGrace} in GRACE meanwhile`,
    );

    expect(timings.recoveredAfterKillMs).toBeLessThan(RECOVERY_BOUND_MS);
    // Never LOCKED or SUSPENDED at any box, never lost an activation, from first line to last.
    expect(lines.filter((c) => c.locked > 0 || c.suspended > 0)).toEqual([]);
    expect(lines.filter((c) => c.at >= killedAt && c.unactivated > 0)).toEqual([]);
    expect(simOutput.filter((l) => /lease rejected|activation failed/.test(l))).toEqual([]);
  }, 150_000);

  it("the plane holds every deployment ACTIVE, a sweep makes 0 transitions, and audit has none for the fleet", async () => {
    const support = cluster.adminClient(LicensingService, "support");
    const ours = new Set(fleet.map((f) => f.deploymentId));
    const states: string[] = [];
    let pageToken = "";
    do {
      const page = await support.listDeployments({ pageSize: 500, pageToken });
      for (const d of page.deployments) if (ours.has(d.id)) states.push(DeploymentState[d.state]);
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    expect(states).toEqual(Array(BOXES).fill("ACTIVE"));

    const run = (await cluster.adminClient(FleetSweepService, "support").sweep({})).sweep!;
    expect(SweepStatus[run.status]).toBe("SUCCEEDED");
    expect(run.examined).toBeGreaterThanOrEqual(BigInt(BOXES));
    expect(run.transitions.reduce((sum, t) => sum + t.count, 0n)).toBe(0n);

    // Every box: provisioned, issued, activated once (with its certificate) — and nothing else.
    const expected = ["appliance.certificate.issue", "deployment.provision", "license.activate", "license.issue"];
    const trail = await eventually(
      "the fleet's activation events in audit",
      async () => {
        const events = await auditTrail(cluster);
        return events.filter((e) => e.action === "license.activate").length >= BOXES ? events : undefined;
      },
      45_000,
    );
    expect(new Set(trail.map((e) => e.id)).size).toBe(trail.length);
    const byResource = new Map<string, string[]>();
    for (const e of trail) {
      const id = e.resource?.id;
      if (id) byResource.set(id, [...(byResource.get(id) ?? []), e.action]);
    }
    const wrong = fleet
      .map((f) => ({ ...f, actions: [...(byResource.get(f.deploymentId) ?? []), ...(byResource.get(f.licenseId) ?? [])].sort() }))
      .filter((f) => JSON.stringify(f.actions) !== JSON.stringify(expected));
    expect(wrong).toEqual([]);
    const verdict = await cluster.adminClient(AuditService, "auditor").verifyChain({});
    expect(verdict).toMatchObject({ ok: true, firstBrokenSeq: 0n });
  }, 120_000);
});
