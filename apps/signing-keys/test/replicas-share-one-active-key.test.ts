/**
 * Several replicas on one database (PostgreSQL; on SQLite two connections to one file, as two
 * processes would have): rotations spread over both replicas still leave exactly one ACTIVE key,
 * and a replica that did not make a change signs with the new ACTIVE key within its recheck
 * interval — and stops signing within it after the ACTIVE key is revoked elsewhere.
 */
import { Code } from "@connectrpc/connect";
import { KeyState, SigningKeyService } from "@lcp/proto/signing/v1/signing_key_service_pb";
import { createAdminClient, createClient } from "@lcp/rpc";
import { testDatabases } from "@lcp/testing/db";
import { ensureDevAdminIssuer } from "@lcp/tokens";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSigningKeys, type SigningKeysApp } from "../src/app.js";
import { expectRefusal, startHarness, type SigningKeysHarness } from "./support.js";

const RECHECK_MS = 200;

describe.each(testDatabases())("two replicas on one database ($name)", (tdb) => {
  let h: SigningKeysHarness;
  let second: SigningKeysApp;
  let secondAdmin: ReturnType<typeof createAdminClient<typeof SigningKeyService>>;
  let secondLicensing: ReturnType<typeof createClient<typeof SigningKeyService>>;
  beforeAll(async () => {
    h = await startHarness(tdb, { activeKeyRecheckMs: RECHECK_MS });
    second = await startSigningKeys({ ...h.config, port: 0 });
    const dev = await ensureDevAdminIssuer(h.db.dataDir);
    const caPem = h.pki.ca.certPem;
    secondAdmin = createAdminClient(SigningKeyService, {
      baseUrl: second.url,
      caPem,
      token: () => dev.mint({ subject: "test-replica-admin", roles: ["super_admin"], ttlSeconds: 600 }),
      retries: 0,
    });
    const cert = await h.pki.service("licensing");
    secondLicensing = createClient(SigningKeyService, { baseUrl: second.url, tls: { caPem, certPem: cert.certPem, keyPem: cert.keyPem }, retries: 0 });
  });
  afterAll(async () => {
    await second?.close();
    await h?.close();
  });

  const sign = (client: typeof secondLicensing) => client.sign({ typ: "lease+jwt", claims: { sub: "lic-1", st: "ACTIVE" } });
  const settle = () => new Promise((resolve) => setTimeout(resolve, RECHECK_MS + 100));

  it("started once: the second replica found the keys and CA the first one created", async () => {
    expect((await h.admin.listKeys({})).keys).toHaveLength(2);
    expect((await secondLicensing.getApplianceTrustBundle({})).caCertificatesPem).toHaveLength(1);
  });

  it("leaves exactly one ACTIVE key after 20 rotations spread over both replicas", async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? h.admin : secondAdmin).rotateKeys({ reason: `replica race ${i}` })),
    );
    expect(new Set(results.map((r) => r.activated!.kid)).size).toBe(20);
    const active = await h.admin.listKeys({ states: [KeyState.ACTIVE] });
    expect(active.keys).toHaveLength(1);
    // The last rotation to commit is the one whose activated key is still ACTIVE.
    expect(results.map((r) => r.activated!.kid)).toContain(active.keys[0]!.kid);
    await settle();
    expect((await sign(h.licensing)).kid).toBe(active.keys[0]!.kid);
    expect((await sign(secondLicensing)).kid).toBe(active.keys[0]!.kid);
  });

  it("signs with a key rotated on the other replica, and stops after it is revoked there", async () => {
    const rotation = await h.admin.rotateKeys({ reason: "on replica one" });
    await settle();
    expect((await sign(secondLicensing)).kid).toBe(rotation.activated!.kid);
    expect((await secondAdmin.getJwks({})).kids[0]).toBe(rotation.activated!.kid);

    await h.admin.revokeKey({ kid: rotation.activated!.kid, reason: "incident" });
    await expectRefusal(sign(h.licensing), Code.FailedPrecondition, "NO_ACTIVE_KEY");
    await settle();
    await expectRefusal(sign(secondLicensing), Code.FailedPrecondition, "NO_ACTIVE_KEY");
  });
});
