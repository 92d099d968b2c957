/**
 * The Kubernetes manifests agree with the apps (test/support/manifests.ts): every variable a
 * container sets is one its app reads, the app's own reader accepts the whole environment in
 * production mode, ports and probes line up, and no secret value is written in a manifest. The
 * check is shown to catch a misspelt variable, an inlined secret, a wrong probe port and a
 * missing required setting, so a green run means something.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readAuditConfig } from "@lcp/audit/config";
import { readConsoleConfig } from "@lcp/console/config";
import { readFleetSweepConfig } from "@lcp/fleet-sweep/config";
import { readLicensingConfig } from "@lcp/licensing/config";
import { readSigningKeysConfig } from "@lcp/signing-keys/config";
import { createTestPki, type TestPki } from "@lcp/testing/pki";
import { afterAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../support/cluster.js";
import { imageRuntime, readDockerfile } from "../support/image.js";
import { checkManifests, renderKustomization, type K8sObject, type ManifestContext } from "../support/manifests.js";

const KUBERNETES = join(REPO_ROOT, "deploy/kubernetes");
const APPS = ["licensing", "signing-keys", "audit", "fleet-sweep", "console"];

describe("Kubernetes manifests", () => {
  const scratch = mkdtempSync(join(tmpdir(), "lcp-manifests-"));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));
  const pkis = new Map<string, Promise<TestPki>>();
  let runs = 0;
  const context = (replicated: readonly string[] = []): ManifestContext => ({
    readers: { licensing: readLicensingConfig, "signing-keys": readSigningKeysConfig, audit: readAuditConfig, "fleet-sweep": readFleetSweepConfig, console: readConsoleConfig },
    image: imageRuntime(readDockerfile()),
    scratch: join(scratch, String(runs++)),
    async tlsFor(app, trustDomain) {
      let pki = pkis.get(trustDomain);
      if (!pki) pkis.set(trustDomain, (pki = createTestPki({ trustDomain })));
      const p = await pki;
      const own = await p.service(app);
      return { certPem: own.certPem, keyPem: own.keyPem, caPem: p.ca.certPem };
    },
    replicated,
  });
  const base = () => renderKustomization(join(KUBERNETES, "base"));
  const deployment = (objects: K8sObject[], name: string) => {
    const d = objects.find((o) => o.kind === "Deployment" && o.metadata.name === name)!;
    return (d.spec as { template: { spec: { containers: Array<Record<string, unknown> & { env: Array<Record<string, unknown>> }> } } }).template.spec.containers[0]!;
  };

  it("base: every app runs from the image with an environment its reader accepts, and reads all of it", async () => {
    const objects = base();
    expect(objects.filter((o) => o.kind === "Deployment").map((o) => o.metadata.name).sort()).toEqual([...APPS].sort());
    expect(await checkManifests(objects, context(APPS))).toEqual([]);
  });

  it.each(["dev", "production"])("overlay %s renders and passes the same checks", async (overlay) => {
    const objects = renderKustomization(join(KUBERNETES, "overlays", overlay));
    expect(await checkManifests(objects, context(overlay === "production" ? APPS : []))).toEqual([]);
    const image = deployment(objects, "licensing").image as string;
    if (overlay === "production") expect(image).toMatch(/^registry\.example\.org\/lcp:\d/);
    expect(new Set(objects.map((o) => o.metadata.namespace)).size).toBe(1);
  });

  it("catches a misspelt variable, an inlined secret, a wrong probe port and a missing required setting", async () => {
    const misspelt = base();
    deployment(misspelt, "licensing").env.find((e) => e.name === "AUDIT_URL")!.name = "AUDIT_ULR";
    expect(await checkManifests(misspelt, context())).toContain("licensing: sets AUDIT_ULR, which licensing never reads");

    const inlined = base();
    const kek = deployment(inlined, "signing-keys").env;
    kek.push({ name: "KEK", value: "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=" });
    const problems = await checkManifests(inlined, context());
    expect(problems).toContain("signing-keys: KEK is set inline; take it from a Secret (secretKeyRef or a mounted file)");

    const database = base();
    const url = deployment(database, "audit").env.find((e) => e.name === "DATABASE_URL")!;
    delete url.valueFrom;
    url.value = "postgres://lcp:hunter2@db:5432/lcp";
    const leaked = await checkManifests(database, context());
    expect(leaked).toContain("audit: DATABASE_URL is set inline; take it from a Secret (secretKeyRef or a mounted file)");
    expect(leaked.some((p) => p.includes("holds a URL with a password"))).toBe(true);

    const pem = base();
    pem.push({ apiVersion: "v1", kind: "Secret", metadata: { name: "lcp-kek" }, stringData: { kek: "-----BEGIN PRIVATE KEY-----\nMC4C\n-----END PRIVATE KEY-----" } } as K8sObject);
    const defined = await checkManifests(pem, context());
    expect(defined).toContain("Secret/lcp-kek is defined in the manifests; create Secrets outside them and reference them");
    expect(defined.some((p) => p.includes("holds a private key"))).toBe(true);

    const probe = base();
    (deployment(probe, "audit").readinessProbe as { grpc: { port: number } }).grpc.port = 7445;
    expect(await checkManifests(probe, context())).toContain("audit: the readiness probe must be gRPC health on the admin port");

    const missing = base();
    const console = deployment(missing, "console");
    console.env = console.env.filter((e) => e.name !== "OIDC_ISSUER");
    expect((await checkManifests(missing, context())).some((p) => p.startsWith("console: its configuration is refused: OIDC_ISSUER"))).toBe(true);
  });
});
