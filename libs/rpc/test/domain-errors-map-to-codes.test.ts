import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { SigningKeyService } from "@lcp/proto/signing/v1/signing_key_service_pb";
import { ErrorInfoSchema } from "@lcp/proto/google/rpc/error_details_pb";
import { DOMAIN_CODES, DomainError, connectCodeFor, errorReason, toConnectError } from "@lcp/rpc";
import { startTestServer, type TestServer } from "@lcp/testing/server";
import { failure, newCalls, signingStub } from "./fixtures.js";

describe("errors reaching the caller", () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ name: "signing-keys", register: signingStub(newCalls()) });
  });
  afterAll(() => t?.close());

  it("maps a DomainError to its Connect code with an ErrorInfo carrying the domain code", async () => {
    const client = await t.serviceClient(SigningKeyService, "licensing");
    const err = await failure(client.sign({ typ: "domain-error" }));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toBe("no active signing key");
    expect(errorReason(err)).toBe("NO_ACTIVE_KEY");
    expect(err.findDetails(ErrorInfoSchema)[0]).toMatchObject({ domain: "lcp", metadata: { hint: "rotate" } });
    expect(err.metadata.get("x-request-id")).toMatch(/[0-9a-f-]{36}/);
  });

  it("answers a plain Error with Internal and the request id, never its message", async () => {
    const client = await t.serviceClient(SigningKeyService, "licensing");
    const err = await failure(client.sign({ typ: "crash" }, { headers: { "x-request-id": "req-42" } }));
    expect(err.code).toBe(Code.Internal);
    expect(err.rawMessage).toBe("internal error (request id req-42)");
    expect(err.message).not.toMatch(/SELECT|srv|secret/);
    expect(errorReason(err)).toBeUndefined();
  });

  it("treats a domain code missing from the table as a bug: Internal", async () => {
    const client = await t.serviceClient(SigningKeyService, "licensing");
    const err = await failure(client.sign({ typ: "unmapped-domain-error" }));
    expect(err.code).toBe(Code.Internal);
    expect(err.rawMessage).not.toMatch(/whatever/);
  });

  it("echoes a caller's request id in the response headers", async () => {
    let header: Headers | undefined;
    await t.anonymousClient(SigningKeyService).getJwks({}, { headers: { "x-request-id": "abc-1" }, onHeader: (h) => (header = h) });
    expect(header?.get("x-request-id")).toBe("abc-1");
  });
});

describe("the domain code table", () => {
  it("maps the documented groups", () => {
    expect(connectCodeFor("NOT_FOUND")).toBe(Code.NotFound);
    for (const c of ["FINGERPRINT_INVALID", "SETTINGS_OUT_OF_RANGE", "REASON_REQUIRED", "TOKEN_EXPIRED", "CSR_MALFORMED", "VALIDITY_OUT_OF_RANGE"]) {
      expect([c, connectCodeFor(c)]).toEqual([c, Code.InvalidArgument]);
    }
    for (const c of ["LICENSE_REVOKED", "LICENSE_EXPIRED", "FINGERPRINT_MISMATCH", "SUBSCRIPTION_INVALID", "NOT_ACTIVATED", "ALREADY_REVOKED", "SAME_FINGERPRINT", "NO_ACTIVE_KEY", "KEY_STATE"]) {
      expect([c, connectCodeFor(c)]).toEqual([c, Code.FailedPrecondition]);
    }
    expect(connectCodeFor("CONFLICT")).toBe(Code.Aborted);
    expect(connectCodeFor("ALREADY_EXISTS")).toBe(Code.AlreadyExists);
    expect(connectCodeFor("UNAVAILABLE")).toBe(Code.Unavailable);
    expect(connectCodeFor("toString")).toBe(Code.Internal);
    expect(Object.values(DOMAIN_CODES)).not.toContain(Code.Internal);
  });

  it("passes ConnectErrors through untouched", () => {
    const e = toConnectError(new DomainError("NOT_FOUND", "no such licence"));
    expect(toConnectError(e)).toBe(e);
  });
});

describe("a dependency that is down for a moment", () => {
  let t: TestServer;
  beforeAll(async () => {
    // The app's classifier (persistence's isConnectionError in the real apps) recognises the
    // handler's failure as a dependency outage.
    const transientError = (err: unknown) => err instanceof Error && /SELECT/.test(err.message);
    t = await startTestServer({ name: "signing-keys", register: signingStub(newCalls()), transientError });
  });
  afterAll(() => t?.close());

  it("is answered Unavailable, so clients retry, without the cause's message", async () => {
    const client = await t.serviceClient(SigningKeyService, "licensing");
    const err = await failure(client.sign({ typ: "crash" }, { headers: { "x-request-id": "req-43" } }));
    expect(err.code).toBe(Code.Unavailable);
    expect(err.rawMessage).toBe("temporarily unavailable, retry later (request id req-43)");
    expect(err.message).not.toMatch(/SELECT|srv|secret/);
  });

  it("leaves domain errors as they are", async () => {
    const client = await t.serviceClient(SigningKeyService, "licensing");
    expect((await failure(client.sign({ typ: "domain-error" }))).code).toBe(Code.FailedPrecondition);
  });
});
