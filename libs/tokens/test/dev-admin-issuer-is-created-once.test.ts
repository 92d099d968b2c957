import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createAdminTokenVerifier, DEV_ADMIN_AUDIENCE, DEV_ADMIN_ISSUER, ensureDevAdminIssuer } from "../src/index.js";

describe("development admin issuer", () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it("creates its key once (mode 0600), reuses it, and mints tokens the verifier accepts", async () => {
    const root = await mkdtemp(join(tmpdir(), "lcp-issuer-"));
    dirs.push(root);
    const pkiDir = join(root, "pki");
    const first = await ensureDevAdminIssuer(pkiDir);
    expect(first.issuer).toBe(DEV_ADMIN_ISSUER);
    expect(first.audience).toBe(DEV_ADMIN_AUDIENCE);
    expect((await stat(join(pkiDir, "admin-issuer.jwk"))).mode & 0o777).toBe(0o600);
    const privateText = await readFile(join(pkiDir, "admin-issuer.jwk"), "utf8");
    expect(JSON.parse(privateText)).toMatchObject({ kty: "OKP", crv: "Ed25519", d: expect.any(String) });
    const published = JSON.parse(await readFile(join(pkiDir, "admin-issuer.jwks.json"), "utf8"));
    expect(published).toEqual(first.jwks);
    expect(published.keys[0].d).toBeUndefined();

    const token = await first.mint({ subject: "dev", roles: ["support"], ttlSeconds: 300 });
    const header = JSON.parse(Buffer.from(token.split(".")[0]!, "base64url").toString());
    expect(header).toEqual({ alg: "EdDSA", typ: "JWT", kid: first.jwks.keys[0]!.kid });

    // A restart finds the same key: tokens minted before it still verify after it.
    const second = await ensureDevAdminIssuer(pkiDir);
    expect(second.jwks).toEqual(first.jwks);
    expect(await readFile(join(pkiDir, "admin-issuer.jwk"), "utf8")).toBe(privateText);
    const verifier = createAdminTokenVerifier({ issuer: second.issuer, audience: second.audience, jwks: second.jwks });
    expect(await verifier.verify(token)).toMatchObject({ ok: true, subject: "dev", roles: ["support"] });
  });

  it("gives concurrent starters one key", async () => {
    const root = await mkdtemp(join(tmpdir(), "lcp-issuer-"));
    dirs.push(root);
    const issuers = await Promise.all(Array.from({ length: 6 }, () => ensureDevAdminIssuer(join(root, "pki"))));
    for (const i of issuers) expect(i.jwks).toEqual(issuers[0]!.jwks);
  });
});
