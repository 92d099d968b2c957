import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { SigningKeyService } from "@lcp/proto/signing/v1/signing_key_service_pb";
import { startTestServer, type TestServer } from "@lcp/testing/server";
import { newCalls, signingStub } from "./fixtures.js";

describe("smoke", () => {
  let t: TestServer;
  const calls = newCalls();
  beforeAll(async () => {
    t = await startTestServer({ name: "signing-keys", register: signingStub(calls) });
  });
  afterAll(() => t?.close());

  it("anonymous GetJwks works, Sign needs credentials, licensing can Sign", async () => {
    const anon = t.anonymousClient(SigningKeyService);
    expect((await anon.getJwks({})).kids).toEqual(["k1"]);
    await expect(anon.sign({ typ: "x" })).rejects.toMatchObject({ code: Code.Unauthenticated });
    const lic = await t.serviceClient(SigningKeyService, "licensing");
    expect((await lic.sign({ typ: "license+jwt" })).token).toBe("signed:license+jwt");
    const admin = t.adminClient(SigningKeyService, ["super_admin"]);
    const res = await admin.listKeys({});
    expect(res.keys).toHaveLength(1);
    const err = await admin.createKey({}).catch((e: unknown) => ConnectError.from(e));
    expect(err).toMatchObject({ code: Code.Unimplemented });
  });
});
