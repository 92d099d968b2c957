import { X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEV_PKI_SERVICES, ensureDevPki } from "../src/index.js";

describe("a dev PKI made before the dev identity provider existed", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "lcp-dev-pki-idp-"));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("gets a dev-idp certificate for localhost from its existing CA, the apps' certificates untouched", async () => {
    expect(DEV_PKI_SERVICES).toContain("dev-idp");
    const older = await ensureDevPki({ dir, services: ["licensing", "signing-keys", "audit", "fleet-sweep"] });
    expect(older.services["dev-idp"]).toBeUndefined();

    const now = await ensureDevPki({ dir });
    expect(now.created).toBe(true);
    expect(now.caCertPem).toBe(older.caCertPem);
    for (const app of ["licensing", "signing-keys", "audit", "fleet-sweep"]) expect(now.services[app]).toEqual(older.services[app]);
    const idp = new X509Certificate(now.services["dev-idp"]!.certPem);
    expect(idp.checkIssued(new X509Certificate(older.caCertPem))).toBe(true);
    expect(idp.checkHost("localhost")).toBe("localhost");
    expect((await stat(join(dir, "dev-idp.key"))).mode & 0o777).toBe(0o600);
    expect(await readFile(join(dir, "dev-idp.crt"), "utf8")).toBe(now.services["dev-idp"]!.certPem);

    // And nothing more on the start after.
    expect((await ensureDevPki({ dir })).created).toBe(false);
  });
});
