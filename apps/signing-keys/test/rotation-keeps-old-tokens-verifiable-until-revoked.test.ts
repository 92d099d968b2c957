/**
 * Rotation: a token signed before RotateKeys still verifies against GetJwks after it; after
 * RevokeKey of its key it no longer does; revoking the ACTIVE key stops signing until the next
 * rotation; 20 concurrent RotateKeys leave exactly one ACTIVE key and a consistent JWKS.
 */
import { Code } from "@connectrpc/connect";
import { KeyState } from "@lcp/proto/signing/v1/signing_key_service_pb";
import { testDatabases } from "@lcp/testing/db";
import { licenseClaims, verifyLicenseToken } from "@lcp/tokens";
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectRefusal, startHarness, type SigningKeysHarness } from "./support.js";

describe.each(testDatabases())("key rotation ($name)", (tdb) => {
  let h: SigningKeysHarness;
  beforeAll(async () => {
    h = await startHarness(tdb);
  });
  afterAll(async () => {
    await h?.close();
  });

  const jwks = async (): Promise<{ set: JSONWebKeySet; kids: string[] }> => {
    const res = await h.anonymous.getJwks({});
    return { set: JSON.parse(res.jwksJson) as JSONWebKeySet, kids: res.kids };
  };
  const verifies = async (token: string): Promise<boolean> => {
    try {
      await jwtVerify(token, createLocalJWKSet((await jwks()).set), { issuer: h.issuer, algorithms: ["EdDSA"], typ: "license+jwt" });
      return true;
    } catch {
      return false;
    }
  };
  // Real licence claims, so @lcp/tokens' verifier (which checks their shapes) accepts the tokens.
  const sign = () =>
    h.licensing.sign({
      typ: "license+jwt",
      claims: {
        ...licenseClaims({
          licenseId: "lic-1",
          deploymentId: "dep-1",
          entitlements: ["imaging"],
          notBefore: new Date(Date.now() - 60_000),
          expiresAt: new Date(Date.now() + 3_600_000),
        }),
      },
    });

  it("signs on a fresh database: the first start created an ACTIVE key", async () => {
    const res = await sign();
    const { kids } = await jwks();
    expect(kids[0]).toBe(res.kid);
    const header = JSON.parse(Buffer.from(res.token.split(".")[0]!, "base64url").toString()) as Record<string, unknown>;
    expect(header).toEqual({ alg: "EdDSA", typ: "license+jwt", kid: res.kid });
    const { payload } = await jwtVerify(res.token, createLocalJWKSet((await jwks()).set), { issuer: h.issuer });
    expect(payload.iat).toBeTypeOf("number");
    expect(payload.sub).toBe("lic-1");
  });

  it("keeps a token signed before a rotation verifiable, and refuses it once its key is revoked", async () => {
    const before = await sign();
    const rotation = await h.admin.rotateKeys({ reason: "scheduled" });
    expect(rotation.retired?.kid).toBe(before.kid);
    expect(rotation.retired?.state).toBe(KeyState.RETIRED);
    expect(rotation.activated?.state).toBe(KeyState.ACTIVE);
    expect(rotation.next?.state).toBe(KeyState.NEXT);

    // Still verifies: RETIRED keys stay in the JWKS (checked with jose and with @lcp/tokens).
    expect(await verifies(before.token)).toBe(true);
    const { set } = await jwks();
    const verdict = await verifyLicenseToken(before.token, { jwks: set, issuer: h.issuer });
    expect(verdict.ok).toBe(true);

    // New tokens come from the newly ACTIVE key.
    const after = await sign();
    expect(after.kid).toBe(rotation.activated?.kid);

    const revoked = await h.admin.revokeKey({ kid: before.kid, reason: "compromised laptop" });
    expect(revoked.key?.state).toBe(KeyState.REVOKED);
    expect(revoked.key?.revokeReason).toBe("compromised laptop");
    expect((await jwks()).kids).not.toContain(before.kid);
    expect(await verifies(before.token)).toBe(false);
    expect(await verifies(after.token)).toBe(true);
  });

  it("leaves no signing key after the ACTIVE key is revoked, until an operator rotates", async () => {
    const active = (await h.admin.listKeys({ states: [KeyState.ACTIVE] })).keys[0]!;
    await h.admin.revokeKey({ kid: active.kid, reason: "incident" });
    await expectRefusal(sign(), Code.FailedPrecondition, "NO_ACTIVE_KEY");
    // Revoking again is a no-op, not an error (a retried call must not fail).
    expect((await h.admin.revokeKey({ kid: active.kid })).key?.state).toBe(KeyState.REVOKED);

    const rotation = await h.admin.rotateKeys({ reason: "recover from incident" });
    expect(rotation.retired).toBeUndefined();
    expect((await sign()).kid).toBe(rotation.activated?.kid);
  });

  it("refuses to retire the ACTIVE key (RotateKeys does that) and retires a NEXT key", async () => {
    const active = (await h.admin.listKeys({ states: [KeyState.ACTIVE] })).keys[0]!;
    await expectRefusal(h.admin.retireKey({ kid: active.kid }), Code.FailedPrecondition, "KEY_STATE");
    const created = await h.admin.createKey({ reason: "pre-publish" });
    expect(created.key?.state).toBe(KeyState.NEXT);
    expect((await jwks()).kids).toContain(created.key!.kid);
    const retired = await h.admin.retireKey({ kid: created.key!.kid });
    expect(retired.key?.state).toBe(KeyState.RETIRED);
    expect((await jwks()).kids).toContain(created.key!.kid);
  });

  it("leaves exactly one ACTIVE key after 20 concurrent rotations, with a consistent JWKS", async () => {
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => h.admin.rotateKeys({ reason: `race ${i}` })));
    const activated = new Set(results.map((r) => r.activated!.kid));
    expect(activated.size).toBe(20); // each rotation activated a different key: they ran one after the other

    const active = await h.admin.listKeys({ states: [KeyState.ACTIVE], pageSize: 500 });
    expect(active.keys).toHaveLength(1);
    const [row] = await h.sql<{ n: number | string }>("select count(*) as n from signing_key where state = 'ACTIVE'");
    expect(Number(row?.n)).toBe(1);

    // The JWKS holds the ACTIVE key first, every NEXT and RETIRED key, and no REVOKED one.
    const all = await h.admin.listKeys({ pageSize: 500 });
    const published = all.keys.filter((k) => k.state !== KeyState.REVOKED).map((k) => k.kid);
    const { kids, set } = await jwks();
    expect(kids[0]).toBe(active.keys[0]!.kid);
    expect(new Set(kids)).toEqual(new Set(published));
    expect(set.keys.map((k) => k.kid)).toEqual(kids);
    expect(all.keys.filter((k) => k.state === KeyState.NEXT).length).toBeGreaterThanOrEqual(1);
    expect((await sign()).kid).toBe(active.keys[0]!.kid);
  });

  it("pages through ListKeys newest first with page tokens and state filters", async () => {
    const all = await h.admin.listKeys({ pageSize: 500 });
    const seen: string[] = [];
    let pageToken = "";
    do {
      const page = await h.admin.listKeys({ pageSize: 7, pageToken });
      expect(page.keys.length).toBeLessThanOrEqual(7);
      seen.push(...page.keys.map((k) => k.kid));
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    expect(seen).toEqual(all.keys.map((k) => k.kid));
    const retired = await h.admin.listKeys({ states: [KeyState.RETIRED] });
    expect(retired.keys.every((k) => k.state === KeyState.RETIRED)).toBe(true);
    // A page token only works with the filter it was issued for.
    const first = await h.admin.listKeys({ pageSize: 2 });
    await expectRefusal(h.admin.listKeys({ pageSize: 2, pageToken: first.nextPageToken, states: [KeyState.NEXT] }), Code.InvalidArgument, "PAGE_TOKEN_INVALID");
    await expectRefusal(h.admin.listKeys({ pageSize: 501 }), Code.InvalidArgument, "INVALID_ARGUMENT");
  });
});
