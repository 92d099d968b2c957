/**
 * At rest: the raw database (every table dumped behind the ORM's back; on SQLite also the bytes
 * of the database and WAL files) holds no private key material in clear — not the PKCS#8 PEM, not
 * its DER, not the JWK `d` — for the token keys and the appliance CA alike. And no RPC returns it.
 */
import { toJsonString } from "@bufbuild/protobuf";
import {
  CreateKeyResponseSchema,
  ListKeysResponseSchema,
  RotateApplianceCaResponseSchema,
  RotateKeysResponseSchema,
} from "@lcp/proto/signing/v1/signing_key_service_pb";
import { testDatabases } from "@lcp/testing/db";
import { KeyWrapError, unwrapSecret } from "@lcp/tokens";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectNoClearSecrets, sqliteFileBytes, secretForms, startHarness, TABLES, type Secret, type SigningKeysHarness } from "./support.js";

describe.each(testDatabases())("private keys at rest ($name)", (tdb) => {
  let h: SigningKeysHarness;
  const responses: string[] = [];
  beforeAll(async () => {
    h = await startHarness(tdb);
    // A few of every kind of key change, capturing every response that describes keys or CAs.
    responses.push(toJsonString(CreateKeyResponseSchema, await h.admin.createKey({ reason: "at-rest test" })));
    responses.push(toJsonString(RotateKeysResponseSchema, await h.admin.rotateKeys({})));
    responses.push(toJsonString(RotateApplianceCaResponseSchema, await h.admin.rotateApplianceCa({ reason: "at-rest test" })));
    responses.push(toJsonString(ListKeysResponseSchema, await h.admin.listKeys({ pageSize: 500 })));
    responses.push((await h.anonymous.getJwks({})).jwksJson);
  });
  afterAll(async () => {
    await h?.close();
  });

  async function secrets(): Promise<Secret[]> {
    const out: Secret[] = [];
    for (const row of await h.sql<{ kid: string; wrapped_private_key: string }>("select kid, wrapped_private_key from signing_key")) {
      out.push(secretForms(`signing key ${row.kid}`, Buffer.from(unwrapSecret(h.kek, row.wrapped_private_key, row.kid)).toString()));
    }
    for (const row of await h.sql<{ id: string; wrapped_private_key: string }>("select id, wrapped_private_key from appliance_ca")) {
      out.push(secretForms(`appliance CA ${row.id}`, Buffer.from(unwrapSecret(h.kek, row.wrapped_private_key, row.id)).toString()));
    }
    return out;
  }

  it("stores every private key wrapped, bound to its row (AAD), and nowhere in clear in any table", async () => {
    const all = await secrets();
    expect(all.length).toBeGreaterThanOrEqual(5); // 4+ token keys and 2 CAs
    const dump = JSON.stringify(
      await Promise.all(TABLES.map(async (table) => ({ table, rows: await h.sql(`select * from ${table}`) }))),
      (_key, value: unknown) => (Buffer.isBuffer(value) ? value.toString("base64") : value),
    );
    for (const secret of all) {
      for (const s of secret.strings) expect(dump.includes(s), `${secret.label} found in clear in the database`).toBe(false);
    }
    // Positive control: the dump does hold the public halves, so the search above looked at real data.
    const [publicJwk] = await h.sql<{ public_jwk: string }>("select public_jwk from signing_key");
    expect(dump).toContain((JSON.parse(publicJwk!.public_jwk) as { x: string }).x);
    // The envelope is tied to its row: moved onto another key's row it does not open.
    const [a, b] = await h.sql<{ kid: string; wrapped_private_key: string }>("select kid, wrapped_private_key from signing_key");
    expect(() => unwrapSecret(h.kek, a!.wrapped_private_key, b!.kid)).toThrow(KeyWrapError);
  });

  // Only SQLite has files of its own to read; PostgreSQL's storage is checked through the dump above.
  if (tdb.name === "sqlite") it("leaves no private key bytes in the SQLite files", async () => {
    const all = await secrets();
    const raw = sqliteFileBytes(h);
    const [publicJwk] = await h.sql<{ public_jwk: string }>("select public_jwk from signing_key");
    expect(raw.includes(Buffer.from((JSON.parse(publicJwk!.public_jwk) as { x: string }).x)), "positive control: public key in the files").toBe(true);
    expectNoClearSecrets(raw, all, "the SQLite files");
  });

  it("returns no private key material from any RPC", async () => {
    const all = await secrets();
    for (const text of responses) {
      expect(text).not.toContain("PRIVATE KEY");
      expect(text).not.toMatch(/\\?"d\\?"\s*:/);
      for (const secret of all) for (const s of secret.strings) expect(text.includes(s)).toBe(false);
    }
  });
});
