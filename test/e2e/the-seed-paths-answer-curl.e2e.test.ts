/**
 * The product page's seven HTTP paths, called as curl or a script calls them (HTTPS with the dev
 * CA, JSON in and out, HTTP/1.1) against the four real processes: each reaches the RPC its
 * `google.api.http` rule names, through the same admission (bearer token, or the box's client
 * certificate for the heartbeat) and leaves the same audit events as the gRPC call would.
 * Each listener serves only its own RPCs' paths: the sweep is fleet-sweep's, the licences licensing's.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applianceSpiffeId, DEFAULT_TRUST_DOMAIN, generateKeyAndCsr } from "@lcp/pki";
import { httpCall, type HttpAnswer } from "@lcp/testing/http";
import { startCluster, type AppName, type Cluster } from "../support/cluster.js";
import { auditTrail, describeEvent, eventually } from "../support/story.js";

describe("the seed's HTTP paths answer curl, with the gRPC calls' admission and audit", () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster();
  }, 120_000);
  afterAll(() => cluster?.stop(), 30_000);

  const call = (app: AppName, method: string, path: string, o: { body?: unknown; token?: string; cert?: { certPem: string; keyPem: string } } = {}): Promise<HttpAnswer> =>
    httpCall({ baseUrl: cluster.urls[app], caPem: cluster.caPem, method, path, ...o });

  it("issues, lists, activates, renews, rebinds, revokes and sweeps over HTTP", async () => {
    const support = await cluster.adminToken("support");
    const provisioned = await call("licensing", "POST", "/deployments", {
      body: { name: "ward 9", customer: "St Mary", kind: "DEPLOYMENT_KIND_ON_PREM", autoIssueLicense: false },
      token: support,
    });
    expect(provisioned.status).toBe(200);
    const deploymentId: string = provisioned.json.deployment.id;

    // POST /licenses
    const issued = await call("licensing", "POST", "/licenses", { body: { deploymentId, entitlements: ["imaging"], term: "86400s" }, token: support });
    expect(issued.status).toBe(200);
    const license = issued.json.license;
    expect(license).toMatchObject({ deploymentId, status: "LICENSE_STATUS_ISSUED", entitlements: ["imaging"] });
    expect(license.token).toEqual(expect.any(String));

    // GET /licenses, with query filters
    const listed = await call("licensing", "GET", `/licenses?deployment_id=${deploymentId}&statuses=LICENSE_STATUS_ISSUED`, { token: support });
    expect(listed.status).toBe(200);
    expect(listed.json.licenses.map((l: { id: string }) => l.id)).toEqual([license.id]);
    expect((await call("licensing", "GET", "/licenses")).status).toBe(401);

    // POST /licenses/{license_id}/activate: no credentials, the licence token is the authority.
    const { keyPem, csrPem } = await generateKeyAndCsr({ spiffeId: applianceSpiffeId(DEFAULT_TRUST_DOMAIN, deploymentId), commonName: deploymentId });
    const activated = await call("licensing", "POST", `/licenses/${license.id}/activate`, {
      body: { licenseToken: license.token, fingerprint: "fp-box-1", csrPem, agentVersion: "curl/8" },
    });
    expect(activated.status).toBe(200);
    expect(activated.json).toMatchObject({ deploymentId, state: "DEPLOYMENT_STATE_ACTIVE" });
    const box = { certPem: [activated.json.certificatePem, ...(activated.json.certificateChainPem ?? [])].join("\n"), keyPem };

    // POST /licenses/{license_id}/heartbeat: the box's client certificate, or 401.
    const beat = await call("licensing", "POST", `/licenses/${license.id}/heartbeat`, { body: { fingerprint: "fp-box-1", agentVersion: "curl/8" }, cert: box });
    expect(beat.status).toBe(200);
    expect(beat.json).toMatchObject({ state: "DEPLOYMENT_STATE_ACTIVE", serverTime: expect.any(String) });
    const bare = await call("licensing", "POST", `/licenses/${license.id}/heartbeat`, { body: { fingerprint: "fp-box-1" } });
    expect([bare.status, bare.json.code]).toEqual([401, 16]);

    // POST /licenses/{license_id}/rebind
    const rebound = await call("licensing", "POST", `/licenses/${license.id}/rebind`, { body: { newFingerprint: "fp-box-2", reason: "mainboard replaced" }, token: support });
    expect(rebound.status).toBe(200);
    // The old box's certificate is refused from then on, as over gRPC.
    const stale = await call("licensing", "POST", `/licenses/${license.id}/heartbeat`, { body: { fingerprint: "fp-box-1" }, cert: box });
    expect(stale.status).toBe(401);

    // POST /licenses/{license_id}/revoke; a second activation is refused with its reason.
    const revoked = await call("licensing", "POST", `/licenses/${license.id}/revoke`, { body: { reason: "reported stolen" }, token: support });
    expect(revoked.status).toBe(200);
    expect(revoked.json.license).toMatchObject({ status: "LICENSE_STATUS_REVOKED" });
    const again = await call("licensing", "POST", `/licenses/${license.id}/activate`, { body: { licenseToken: license.token, fingerprint: "fp-box-2", csrPem } });
    expect([again.status, again.json.code]).toEqual([400, 9]); // FailedPrecondition, as DOMAIN_CODES maps it
    expect(again.json.details).toEqual([expect.objectContaining({ "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason: "LICENSE_REVOKED", domain: "lcp" })]);

    // POST /licenses/health/sweep is fleet-sweep's: licensing's listener has no such path.
    expect((await call("licensing", "POST", "/licenses/health/sweep", { body: {}, token: support })).status).toBe(404);
    const swept = await call("fleet-sweep", "POST", "/licenses/health/sweep", { body: { dryRun: false }, token: support });
    expect(swept.status).toBe(200);
    expect(swept.json.sweep).toMatchObject({ status: "SWEEP_STATUS_SUCCEEDED", requestedBy: cluster.adminSubject("support") });
    const report = await call("fleet-sweep", "GET", `/sweeps/${swept.json.sweep.id}`, { token: support });
    expect(report.json.sweep.id).toBe(swept.json.sweep.id);

    // The same audit events as the gRPC calls, with the same actors.
    const admin = `ADMIN:${cluster.adminSubject("support")}`;
    const wanted = [
      `license.issue SUCCESS ${admin} license`,
      `license.activate SUCCESS APPLIANCE:${deploymentId} license`,
      `license.rebind SUCCESS ${admin} license`,
      `license.revoke SUCCESS ${admin} license`,
      `license.activate DENIED APPLIANCE:${deploymentId} license`,
    ];
    await eventually("the HTTP calls' audit events", async () => {
      const lines = (await auditTrail(cluster)).map(describeEvent);
      return wanted.every((w) => lines.includes(w)) ? lines : undefined;
    });
    const viaHttp = await call("audit", "GET", `/audit/events?action=license.revoke&resource_id=${license.id}`, { token: await cluster.adminToken("auditor") });
    expect(viaHttp.status).toBe(200);
    expect(viaHttp.json.events).toHaveLength(1);
  }, 120_000);
});
