import { readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createAdminTokenVerifier, createTrustingFetch } from "@lcp/tokens";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEV_IDP_FILES, startDevIdentityProvider } from "../provider.js";
import { signInAs } from "../sign-in.js";
import { startTestIdp, type TestIdp } from "./support.js";

describe("the dev identity provider's state folder", () => {
  let t: TestIdp;
  beforeAll(async () => {
    t = await startTestIdp();
  });
  afterAll(() => t?.close());

  it("holds its key, cookie keys, users and console secret, folder 0700 and files 0600", async () => {
    expect((await readdir(t.stateDir)).sort()).toEqual(Object.values(DEV_IDP_FILES).sort());
    expect((await stat(t.stateDir)).mode & 0o777).toBe(0o700);
    for (const name of Object.values(DEV_IDP_FILES)) expect((await stat(join(t.stateDir, name))).mode & 0o777, name).toBe(0o600);
    expect(t.idp.consoleClient.secretFile).toBe(join(t.stateDir, DEV_IDP_FILES.consoleClientSecret));
    expect(await readFile(t.idp.consoleClient.secretFile, "utf8")).toBe(t.idp.consoleClient.clientSecret);
    expect(t.idp.consoleClient.clientSecret).toMatch(/^[\w-]{43}$/);
  });

  it("keeps users, passwords, console secret and signing key across a restart: a token issued before still verifies", async () => {
    const before = t.idp;
    const support = before.users.find((u) => u.role === "support")!;
    const { accessToken } = await signInAs({ issuer: before.issuer, caPem: t.caPem, username: support.username, password: support.password });
    const jwksBefore = await (await createTrustingFetch({ caPem: t.caPem })(before.jwksUrl)).json();

    const after = await t.restart();
    expect(after.users).toEqual(before.users);
    expect(after.consoleClient).toEqual(before.consoleClient);
    const jwksAfter = await (await createTrustingFetch({ caPem: t.caPem })(after.jwksUrl)).json();
    expect(jwksAfter).toEqual(jwksBefore);
    expect(JSON.stringify(jwksAfter)).not.toMatch(/"d"/);
    // The old issuer named the old port; the key, which is what signs, is the same one.
    const verdict = await createAdminTokenVerifier({ issuer: before.issuer, audience: after.audience, jwks: new URL(after.jwksUrl), jwksCaPem: t.caPem }).verify(accessToken);
    expect(verdict).toMatchObject({ ok: true, subject: "support" });
    const fresh = await signInAs({ issuer: after.issuer, caPem: t.caPem, username: support.username, password: support.password });
    expect(await createAdminTokenVerifier({ issuer: after.issuer, audience: after.audience, jwks: new URL(after.jwksUrl), jwksCaPem: t.caPem }).verify(fresh.accessToken)).toMatchObject({
      ok: true,
    });
  });

  it("adds a user for a role missing from an older users file, keeping the other passwords", async () => {
    const file = join(t.stateDir, DEV_IDP_FILES.users);
    const { users } = JSON.parse(await readFile(file, "utf8")) as { users: Array<{ role: string; password: string }> };
    await writeFile(file, JSON.stringify({ users: users.filter((u) => u.role !== "auditor") }));
    const after = await t.restart();
    expect(after.users.map((u) => u.role).sort()).toEqual(users.map((u) => u.role).sort());
    for (const u of users.filter((x) => x.role !== "auditor")) expect(after.users.find((x) => x.role === u.role)!.password).toBe(u.password);
    expect(after.users.find((u) => u.role === "auditor")!.password).not.toBe(users.find((u) => u.role === "auditor")!.password);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it("refuses a damaged users file with its path instead of inventing new passwords", async () => {
    await t.stop();
    const file = join(t.stateDir, DEV_IDP_FILES.users);
    const good = await readFile(file, "utf8");
    await writeFile(file, '{"users": [{"username": "root", "password": "x", "role": "root", "name": "r"}]}');
    await expect(t.restart()).rejects.toThrow(`${file}: not a list of dev users`);
    await writeFile(file, good);
    await t.restart();
  });

  it("never starts with NODE_ENV=production", async () => {
    const previous = process.env.NODE_ENV;
    process.env.NODE_ENV = "production";
    try {
      await expect(
        startDevIdentityProvider({ port: 0, tls: { certPem: "", keyPem: "" }, stateDir: t.stateDir, consoleRedirectUris: ["https://localhost:7440/auth/callback"], consolePostLogoutRedirectUris: [] }),
      ).rejects.toThrow("the development identity provider never runs in production; configure OIDC_ISSUER");
    } finally {
      process.env.NODE_ENV = previous;
    }
  });
});
