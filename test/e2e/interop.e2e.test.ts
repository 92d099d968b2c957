/**
 * Independent clients against the real processes: `buf curl --reflect` (no proto files, only
 * server reflection) for admin calls with a token from `npm run token` (a sign-in at the dev
 * identity provider, which the apps trust through OIDC_* as `npm start` sets them), and `@grpc/grpc-js` with
 * `@grpc/proto-loader` (a gRPC stack that shares no code with connect-node) calling licensing over
 * TLS as an admin, activating as an appliance, and then calling over mTLS with the certificate it
 * was issued, as well as a service identity calling signing-keys over mTLS.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKeyAndCsr } from "@lcp/pki";
import { REPO_ROOT, startCluster, type Cluster } from "../support/cluster.js";
import { BUF, run, runTs } from "../support/processes.js";

let cluster: Cluster;

beforeAll(async () => {
  // As `npm start` does: the dev identity provider first, then the apps trusting it.
  cluster = await startCluster({ devIdentityProvider: true });
}, 120_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await cluster?.stop();
}, 60_000);

/** `buf curl` over gRPC with reflection, as an operator types it. */
async function bufCurl(url: string, options: { token?: string; data?: unknown; extra?: string[] } = {}) {
  const args = ["curl", "--cacert", cluster.caPath, "--reflect", "--protocol", "grpc"];
  if (options.token) args.push("-H", `authorization: Bearer ${options.token}`);
  if (options.data !== undefined) args.push("-d", JSON.stringify(options.data));
  args.push(...(options.extra ?? []), url);
  return run(BUF, args);
}

/** `npm run -s token -- --role <role>` against the cluster's DATA_DIR. */
async function npmToken(role: string): Promise<string> {
  const res = await runTs("tools/token/main.ts", ["--role", role], { env: { ...process.env, DATA_DIR: cluster.dataDir, OIDC_ISSUER: cluster.env.OIDC_ISSUER } });
  expect(res.stderr).toBe("");
  expect(res.code).toBe(0);
  return res.stdout.trim();
}

describe("buf curl --reflect (no proto files)", () => {
  it("lists every app's services through reflection", async () => {
    const expected = {
      licensing: ["licensing.v1.LicensingService", "licensing.v1.ApplianceService", "licensing.v1.ReconcileService"],
      "signing-keys": ["signing.v1.SigningKeyService"],
      audit: ["audit.v1.AuditService"],
      "fleet-sweep": ["fleet.v1.FleetSweepService"],
    } as const;
    for (const [app, services] of Object.entries(expected)) {
      const res = await bufCurl(cluster.urls[app as keyof typeof expected], { extra: ["--list-services"] });
      expect(res.code, res.stderr).toBe(0);
      const listed = res.stdout.trim().split("\n");
      expect(listed).toEqual(expect.arrayContaining([...services, "grpc.health.v1.Health"]));
    }
  });

  it("provisions and lists licences with a bearer token from npm run token", async () => {
    const token = await npmToken("support");
    const made = await bufCurl(`${cluster.urls.licensing}/licensing.v1.LicensingService/ProvisionDeployment`, {
      token,
      data: { name: "buf-curl-box", customer: "interop", kind: "DEPLOYMENT_KIND_ON_PREM" },
    });
    expect(made.code, made.stderr).toBe(0);
    const { deployment, license } = JSON.parse(made.stdout) as { deployment: { id: string; state: string }; license: { id: string; status: string } };
    expect([deployment.state, license.status]).toEqual(["DEPLOYMENT_STATE_PENDING", "LICENSE_STATUS_ISSUED"]);

    const listed = await bufCurl(`${cluster.urls.licensing}/licensing.v1.LicensingService/ListLicenses`, { token, data: { deploymentId: deployment.id } });
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as { licenses: Array<{ id: string }> }).licenses.map((l) => l.id)).toEqual([license.id]);
  });

  it("shows the refusal codes an operator meets: no token, a role without the permission", async () => {
    const list = `${cluster.urls.licensing}/licensing.v1.LicensingService/ListLicenses`;
    const anonymous = await bufCurl(list);
    expect(anonymous.code).not.toBe(0);
    expect(anonymous.stderr).toContain('"code": "unauthenticated"');

    const auditor = await npmToken("auditor");
    const revoke = await bufCurl(`${cluster.urls.licensing}/licensing.v1.LicensingService/RevokeLicense`, {
      token: auditor,
      data: { licenseId: "01a00000-0000-7000-8000-000000000000", reason: "not allowed" },
    });
    expect(revoke.code).not.toBe(0);
    expect(revoke.stderr).toContain('"code": "permission_denied"');
  });
});

// ---- @grpc/grpc-js ----------------------------------------------------------------------------

const clients: grpc.Client[] = [];
const packages = protoLoader.loadSync(
  ["licensing/v1/licensing_service.proto", "licensing/v1/appliance_service.proto", "signing/v1/signing_key_service.proto"],
  { includeDirs: [join(REPO_ROOT, "proto")], keepCase: false, enums: String, longs: String, defaults: true, oneofs: true },
);
const loaded = grpc.loadPackageDefinition(packages) as unknown as {
  licensing: { v1: { LicensingService: grpc.ServiceClientConstructor; ApplianceService: grpc.ServiceClientConstructor } };
  signing: { v1: { SigningKeyService: grpc.ServiceClientConstructor } };
};

function grpcClient(ctor: grpc.ServiceClientConstructor, url: string, credentials: grpc.ChannelCredentials): grpc.Client {
  const client = new ctor(new URL(url).host, credentials);
  clients.push(client);
  return client;
}

type Callback<T> = (err: grpc.ServiceError | null, value: T) => void;
function unary<T>(client: grpc.Client, method: string, request: unknown, metadata = new grpc.Metadata()): Promise<T> {
  return new Promise((done, fail) => {
    const fn = (client as unknown as Record<string, (r: unknown, m: grpc.Metadata, o: grpc.CallOptions, cb: Callback<T>) => void>)[method]!;
    fn.call(client, request, metadata, { deadline: Date.now() + 15_000 }, (err, value) => (err ? fail(err) : done(value)));
  });
}

function bearer(token: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${token}`);
  return md;
}

describe("@grpc/grpc-js", () => {
  it("calls licensing over TLS as an admin, activates as an appliance, then speaks mTLS with the issued certificate", async () => {
    const ca = Buffer.from(cluster.caPem);
    const tls = grpc.credentials.createSsl(ca);
    const admin = grpcClient(loaded.licensing.v1.LicensingService, cluster.urls.licensing, tls);
    const token = await cluster.adminToken("support");

    const made = await unary<{ deployment: { id: string; state: string }; license: { id: string; token: string } }>(
      admin,
      "provisionDeployment",
      { name: "grpc-js-box", customer: "interop", kind: "DEPLOYMENT_KIND_ON_PREM" },
      bearer(token),
    );
    expect(made.deployment.state).toBe("DEPLOYMENT_STATE_PENDING");

    // Activate needs no client certificate: the licence token is the credential.
    const { keyPem, csrPem } = await generateKeyAndCsr({ commonName: made.deployment.id });
    const appliance = grpcClient(loaded.licensing.v1.ApplianceService, cluster.urls.licensing, tls);
    const activation = await unary<{ deploymentId: string; certificatePem: string; leaseToken: string; state: string }>(appliance, "activate", {
      licenseId: made.license.id,
      licenseToken: made.license.token,
      fingerprint: "grpc-js-mainboard",
      csrPem,
      agentVersion: "grpc-js-e2e/1",
    });
    expect(activation.deploymentId).toBe(made.deployment.id);
    expect(activation.state).toBe("DEPLOYMENT_STATE_ACTIVE");
    expect(activation.leaseToken.split(".")).toHaveLength(3);

    const deployment = await unary<{ deployment: { state: string } }>(admin, "getDeployment", { deploymentId: made.deployment.id }, bearer(token));
    expect(deployment.deployment.state).toBe("DEPLOYMENT_STATE_ACTIVE");

    // Over mTLS the certificate is an appliance identity: authenticated, but an appliance may not
    // call admin RPCs (PermissionDenied, not Unauthenticated)…
    const mtls = grpc.credentials.createSsl(ca, Buffer.from(keyPem), Buffer.from(activation.certificatePem));
    const asBox = grpcClient(loaded.licensing.v1.LicensingService, cluster.urls.licensing, mtls);
    await expect(unary(asBox, "listLicenses", {})).rejects.toMatchObject({ code: grpc.status.PERMISSION_DENIED });
    // …and with no certificate and no token the same call is Unauthenticated.
    await expect(unary(admin, "listLicenses", {})).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED });

    // Revoking the licence revokes the certificate: the same mTLS identity is refused from now on.
    await unary(admin, "revokeLicense", { licenseId: made.license.id, reason: "interop test" }, bearer(token));
    await expect(unary(asBox, "listLicenses", {})).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED });
  });

  it("a service identity calls signing-keys over mTLS; the same call over TLS alone is refused", async () => {
    const ca = Buffer.from(cluster.caPem);
    const pki = join(cluster.dataDir, "pki");
    const asLicensing = grpc.credentials.createSsl(ca, readFileSync(join(pki, "licensing.key")), readFileSync(join(pki, "licensing.crt")));
    const signing = grpcClient(loaded.signing.v1.SigningKeyService, cluster.urls["signing-keys"], asLicensing);
    const bundle = await unary<{ certificatesPem?: string[]; certificatePem?: string[] }>(signing, "getApplianceTrustBundle", {});
    const pems = Object.values(bundle).flat().filter((v): v is string => typeof v === "string" && v.includes("BEGIN CERTIFICATE"));
    expect(pems.length).toBeGreaterThan(0);

    const anonymous = grpcClient(loaded.signing.v1.SigningKeyService, cluster.urls["signing-keys"], grpc.credentials.createSsl(ca));
    await expect(unary(anonymous, "getApplianceTrustBundle", {})).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED });
  });
});
