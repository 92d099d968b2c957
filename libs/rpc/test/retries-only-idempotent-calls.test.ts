import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { SigningKeyService } from "@lcp/proto/signing/v1/signing_key_service_pb";
import { createClient } from "@lcp/rpc";
import { startTestServer, type TestServer } from "@lcp/testing/server";
import { failure, newCalls, signingStub } from "./fixtures.js";

describe("client retries and server message limits", () => {
  let t: TestServer;
  const calls = newCalls();
  let failFirst = 0;
  beforeAll(async () => {
    t = await startTestServer({
      name: "signing-keys",
      maxReceiveMessageBytes: 64 * 1024,
      register: signingStub(calls, {
        getJwks: (n) => {
          if (n <= failFirst) throw new ConnectError("try again", Code.Unavailable);
        },
        sign: (n) => {
          if (n <= failFirst) throw new ConnectError("try again", Code.Unavailable);
        },
      }),
    });
  });
  afterAll(() => t?.close());

  const client = async (retries: number) => {
    const cert = await t.pki.service("licensing");
    return createClient(SigningKeyService, {
      baseUrl: t.url,
      tls: { caPem: t.pki.ca.certPem, certPem: cert.certPem, keyPem: cert.keyPem },
      retries,
      retryBaseDelayMs: 5,
    });
  };

  it("retries a NO_SIDE_EFFECTS call on Unavailable until it succeeds", async () => {
    calls.getJwks = 0;
    failFirst = 2;
    expect((await (await client(3)).getJwks({})).kids).toEqual(["k1"]);
    expect(calls.getJwks).toBe(3);
  });

  it("gives up after the configured number of retries", async () => {
    calls.getJwks = 0;
    failFirst = 10;
    expect((await failure((await client(2)).getJwks({}))).code).toBe(Code.Unavailable);
    expect(calls.getJwks).toBe(3);
  });

  it("never retries a call with side effects (Sign)", async () => {
    calls.sign = 0;
    failFirst = 1;
    expect((await failure((await client(3)).sign({ typ: "license+jwt" }))).code).toBe(Code.Unavailable);
    expect(calls.sign).toBe(1);
  });

  it("refuses a request message over the limit with ResourceExhausted, before the handler", async () => {
    calls.sign = 0;
    failFirst = 0;
    const err = await failure((await client(0)).sign({ typ: "x".repeat(100 * 1024) }));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(calls.sign).toBe(0);
    expect((await (await client(0)).sign({ typ: "small" })).token).toBe("signed:small");
  });
});
