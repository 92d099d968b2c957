/**
 * An air-gapped site, end to end: a box with no route to licensing (the SDK without a URL) writes
 * its request files, an operator answers each with `npm run offline -- respond` against the real
 * processes, and the box imports the answers. It activates, runs, renews, locks when its lease
 * runs out unrenewed, and learns of a revocation with its next answer. Between files, the sweep
 * leaves the deployment ACTIVE: its health is its lease. The air-gapped lease is shrunk to
 * seconds, so both sides' real clocks carry the story (the months-long jumps of an injected clock
 * are the SDK's and the domain's own tests).
 */
import { execFile } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { createAppliance, type Appliance } from "@lcp/appliance-sdk";
import { Connectivity, DeploymentKind, DeploymentState, type License } from "@lcp/proto/licensing/v1/types_pb";
import { LicensingService } from "@lcp/proto/licensing/v1/licensing_service_pb";
import { httpCall } from "@lcp/testing/http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCluster, type Cluster } from "../support/cluster.js";
import { auditTrail, eventually, TOKEN_ISSUER } from "../support/story.js";

const LEASE_MS = 8_000;
const RENEW_AFTER_MS = 2_000;
const run = promisify(execFile);

describe("an air-gapped site runs on files an operator carries", () => {
  let cluster: Cluster;
  let license: License;
  let deploymentId: string;
  let box: Appliance;
  let files: string;

  beforeAll(async () => {
    cluster = await startCluster();
    files = join(cluster.dataDir, "carried");
    mkdirSync(files, { recursive: true });
    await cluster.adminClient(LicensingService, "super_admin").updateSettings({
      settings: { airGappedLease: durationFromMs(LEASE_MS), airGappedRenewAfter: durationFromMs(RENEW_AFTER_MS) },
      updateMask: { paths: ["air_gapped_lease", "air_gapped_renew_after"] },
    });
  }, 120_000);
  afterAll(() => cluster?.stop(), 30_000);

  /** `npm run offline -- respond` as an operator runs it: the request from a file, the answer on stdout. */
  async function respond(request: string, role: "onboarding" | "support" = "onboarding", name = `request-${Date.now()}.jwt`) {
    const path = join(files, name);
    writeFileSync(path, request);
    const env = { ...process.env, LCP_TOKEN: await cluster.adminToken(role), LICENSING_URL: cluster.urls.licensing, CA_FILE: cluster.caPath };
    return run(process.execPath, ["--conditions=source", "--import", "tsx", "tools/offline/main.ts", "respond", path], { env, timeout: 60_000 }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout: stdout.trim(), stderr }),
      (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, stdout: error.stdout.trim(), stderr: error.stderr }),
    );
  }

  const deployment = async () => (await cluster.adminClient(LicensingService, "support").getDeployment({ deploymentId })).deployment!;

  it("provisions the site air-gapped, and the box, with no URL, activates by files", async () => {
    const provisioned = await cluster.adminClient(LicensingService, "onboarding").provisionDeployment({
      name: "radiology-closed-net",
      customer: "St Mary",
      kind: DeploymentKind.ON_PREM,
      connectivity: Connectivity.AIR_GAPPED,
    });
    license = provisioned.license!;
    deploymentId = provisioned.deployment!.id;
    box = await createAppliance({
      caPem: cluster.caPem,
      licenseId: license.id,
      licenseToken: license.token,
      fingerprint: "closed-net-box-1",
      stateFile: join(cluster.dataDir, "air-gapped-box.json"),
      issuer: TOKEN_ISSUER,
    });
    await expect(box.activate()).rejects.toMatchObject({ code: "AIR_GAPPED" });

    const answered = await respond(await box.writeActivationRequest());
    expect(answered.code, answered.stderr).toBe(0);
    expect(answered.stderr).toMatch(/activation answered for licence .*: DEPLOYMENT_STATE_ACTIVE, lease 1 valid until/);
    expect(await box.importResponse(answered.stdout)).toMatchObject({ kind: "activation", answer: "ACTIVE", leaseSeq: 1 });
    expect(box.state()).toEqual({ state: "ACTIVE" });
    expect(await deployment()).toMatchObject({ state: DeploymentState.ACTIVE, connectivity: Connectivity.AIR_GAPPED });
  });

  it("the sweep leaves it ACTIVE though it never heartbeats", async () => {
    const sweep = await httpCall({ baseUrl: cluster.urls["fleet-sweep"], caPem: cluster.caPem, method: "POST", path: "/licenses/health/sweep", body: {}, token: await cluster.adminToken("support") });
    expect(sweep.status).toBe(200);
    expect((await deployment()).state).toBe(DeploymentState.ACTIVE);
  });

  it("renews by files when due, and locks when its lease runs out unrenewed", async () => {
    const renewAt = box.status().renewAt!;
    expect(renewAt - Date.now()).toBeLessThanOrEqual(RENEW_AFTER_MS);
    await eventually("renewal due", () => (Date.now() >= renewAt ? true : undefined));
    expect(box.state()).toEqual({ state: "ACTIVE" });
    const answered = await respond(await box.writeRenewalRequest({ studies: 1_234 }), "support");
    expect(answered.code, answered.stderr).toBe(0);
    expect(await box.importResponse(answered.stdout)).toMatchObject({ kind: "renewal", answer: "ACTIVE", leaseSeq: 2 });
    // The same answer again is a replay: refused, nothing changes.
    await expect(box.importResponse(answered.stdout)).rejects.toMatchObject({ name: "OfflineFileError" });
    expect(box.status()).toMatchObject({ state: "ACTIVE", leaseSeq: 2 });

    // Nobody comes back with a renewal: the box locks at its lease's end, and the sweep agrees.
    await eventually("the box locked", () => (box.state().state === "LOCKED" ? true : undefined), LEASE_MS + 5_000);
    await eventually("the deployment locked", async () => {
      await httpCall({ baseUrl: cluster.urls["fleet-sweep"], caPem: cluster.caPem, method: "POST", path: "/licenses/health/sweep", body: {}, token: await cluster.adminToken("support") });
      const d = await deployment();
      return d.state === DeploymentState.LOCKED ? d : undefined;
    });
    const trail = await auditTrail(cluster);
    expect(trail.filter((e) => e.resource?.id === license.id && (e.action === "license.activate" || e.action === "license.renew")).map((e) => [e.action, e.details?.["channel"]])).toEqual([
      ["license.activate", "file"],
      ["license.renew", "file"],
    ]);
  });

  it("a revocation reaches it with its next answer, and the CLI says what it refused", async () => {
    await cluster.adminClient(LicensingService, "support").revokeLicense({ licenseId: license.id, reason: "reported stolen" });
    const answered = await respond(await box.writeRenewalRequest(), "support");
    expect(answered.code, answered.stderr).toBe(0);
    expect(answered.stderr).toMatch(/renewal answered .*: DEPLOYMENT_STATE_LOCKED \(LOCK_REASON_REVOKED\)/);
    expect(await box.importResponse(answered.stdout)).toMatchObject({ answer: "LOCKED", lockReason: "REVOKED" });
    expect(box.state()).toEqual({ state: "LOCKED", reason: "REVOKED" });

    // Its activation request is refused for ever; the CLI exits 1 naming the reason.
    const refused = await respond(await box.writeActivationRequest());
    expect([refused.code, refused.stdout]).toEqual([1, ""]);
    expect(refused.stderr).toMatch(/licensing refused the request \(HTTP 400, LICENSE_REVOKED\): the licence has been revoked/);
    // Without a token it does not call at all.
    const noToken = await run(process.execPath, ["--conditions=source", "--import", "tsx", "tools/offline/main.ts", "respond", join(files, "none.jwt")], {
      env: { ...process.env, LCP_TOKEN: "" },
    }).catch((e: { code: number; stderr: string }) => e);
    expect(noToken).toMatchObject({ code: 2, stderr: expect.stringMatching(/no admin token/) });
  });
});
