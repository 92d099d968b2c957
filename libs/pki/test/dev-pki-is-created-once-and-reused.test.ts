import { X509Certificate } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, stat, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DEV_PKI_SERVICES, DevPkiError, ensureDevPki } from "../src/index.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "lcp-dev-pki-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const services = ["licensing", "signing-keys", "audit", "fleet-sweep"];
const mode = async (path: string) => (await stat(path)).mode & 0o777;
const snapshot = async () => {
  const files: Record<string, string> = {};
  for (const name of (await readdir(dir)).sort()) files[name] = await readFile(join(dir, name), "utf8");
  return files;
};

describe("ensureDevPki", () => {
  it("creates the CA and one certificate per app on first start, keys private", async () => {
    const first = await ensureDevPki({ dir, trustDomain: "lcp.local", services });
    expect(first.created).toBe(true);
    expect((await readdir(dir)).sort()).toEqual(
      ["ca.crt", "ca.key", ...services.flatMap((s) => [`${s}.crt`, `${s}.key`])].sort(),
    );
    expect(first.caPath).toBe(join(dir, "ca.crt"));
    const ca = new X509Certificate(first.caCertPem);
    expect(ca.ca).toBe(true);
    for (const service of services) {
      const material = first.services[service]!;
      expect(material.certPath).toBe(join(dir, `${service}.crt`));
      const cert = new X509Certificate(material.certPem);
      expect(cert.checkIssued(ca) && cert.verify(ca.publicKey)).toBe(true);
      expect(cert.subjectAltName).toContain(`URI:spiffe://lcp.local/service/${service}`);
      expect(await mode(material.keyPath)).toBe(0o600);
      expect(await readFile(material.keyPath, "utf8")).toBe(material.keyPem);
    }
    expect(await mode(join(dir, "ca.key"))).toBe(0o600);
  });

  it("changes nothing on a second start and returns identical PEMs", async () => {
    const first = await ensureDevPki({ dir, services });
    const files = await snapshot();
    const second = await ensureDevPki({ dir, services });
    expect(second.created).toBe(false);
    expect({ ...second, created: true }).toEqual(first);
    expect(await snapshot()).toEqual(files);
  });

  it("issues only a missing app certificate, from the existing CA", async () => {
    const first = await ensureDevPki({ dir, services });
    await unlink(join(dir, "audit.crt"));
    const second = await ensureDevPki({ dir, services });
    expect(second.created).toBe(true);
    expect(second.caCertPem).toBe(first.caCertPem);
    expect(second.services.licensing).toEqual(first.services.licensing);
    expect(second.services.audit!.certPem).not.toBe(first.services.audit!.certPem);
    expect(new X509Certificate(second.services.audit!.certPem).checkIssued(new X509Certificate(first.caCertPem))).toBe(true);
    const added = await ensureDevPki({ dir, services: [...services, "appliance-sim"] });
    expect(Object.keys(added.services)).toContain("appliance-sim");
  });

  it("adds the console's certificate to a PKI made before the console existed, changing nothing else", async () => {
    const before = await ensureDevPki({ dir, services });
    const files = await snapshot();
    const after = await ensureDevPki({ dir });
    expect(DEV_PKI_SERVICES).toContain("console");
    expect(after.created).toBe(true);
    expect(after.caCertPem).toBe(before.caCertPem);
    for (const service of services) expect(after.services[service]).toEqual(before.services[service]);
    const consoleCert = new X509Certificate(after.services.console!.certPem);
    expect(consoleCert.checkIssued(new X509Certificate(before.caCertPem))).toBe(true);
    expect(consoleCert.subjectAltName).toContain("DNS:localhost");
    expect(await mode(join(dir, "console.key"))).toBe(0o600);
    const now = await snapshot();
    for (const [name, text] of Object.entries(files)) if (name !== ".lock") expect(now[name]).toBe(text);
  });

  it("works from ca.crt alone when every app certificate exists, and fails clearly when one must be issued", async () => {
    await ensureDevPki({ dir, services });
    await unlink(join(dir, "ca.key"));
    const reused = await ensureDevPki({ dir, services });
    expect(reused.created).toBe(false);
    expect(reused.caKeyPem).toBeUndefined();
    await unlink(join(dir, "fleet-sweep.crt"));
    await expect(ensureDevPki({ dir, services })).rejects.toThrow(DevPkiError);
    await expect(ensureDevPki({ dir, services })).rejects.toThrow(/ca\.key is missing/);
  });

  it("refuses to invent a new CA when app certificates exist without ca.crt", async () => {
    await ensureDevPki({ dir, services });
    await unlink(join(dir, "ca.crt"));
    await expect(ensureDevPki({ dir, services })).rejects.toThrow(/ca\.crt is missing/);
  });

  it("recovers from a crash between writing ca.key and ca.crt", async () => {
    await writeFile(join(dir, "ca.key"), "half a key");
    const result = await ensureDevPki({ dir, services: ["audit"] });
    expect(result.created).toBe(true);
    expect(new X509Certificate(result.caCertPem).ca).toBe(true);
  });

  it("serialises concurrent first starts on one folder: everyone gets the same CA", async () => {
    const results = await Promise.all([1, 2, 3].map(() => ensureDevPki({ dir, services })));
    expect(new Set(results.map((r) => r.caCertPem)).size).toBe(1);
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect((await readdir(dir)).filter((f) => f.endsWith(".tmp") || f === ".lock")).toEqual([]);
  });
});
