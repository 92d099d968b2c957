import { createClient, Code, ConnectError } from "@connectrpc/connect";
import { LicensingService } from "@lcp/proto/licensing/v1/licensing_service_pb";
import { DomainError, toConnectError } from "@lcp/rpc";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeError, isRetryable } from "../src/lib/errors.js";
import { createConsoleTransport } from "../src/lib/transport.js";
import { failure, startTestApi, type TestApi } from "./support.js";

/** How the services answer: a DomainError turned into a Connect error by libs/rpc's one mapping. */
const refuse = (err: DomainError) => {
  throw toConnectError(err);
};

describe("errors in words", () => {
  let api: TestApi;
  let client: ReturnType<typeof createClient<typeof LicensingService>>;
  beforeAll(async () => {
    api = await startTestApi((router) =>
      router.service(LicensingService, {
        revokeLicense: () => refuse(new DomainError("REASON_REQUIRED", "a reason is required for the audit trail", { field: "reason" })),
        updateSettings: () => refuse(new DomainError("SETTINGS_OUT_OF_RANGE", "grace_window must be between 1 s and 365 d (got 400 d)", { field: "grace_window" })),
        getSettings: () => refuse(new DomainError("CONFLICT", "settings are at version 4, not 3; reload and retry", { version: "4" })),
        rebindLicense: () => refuse(new DomainError("LICENSE_REVOKED", "the licence is revoked")),
        getDeployment: () => {
          throw new Error("SELECT * FROM secrets at /srv/app.ts:12");
        },
      }),
    );
    client = createClient(LicensingService, createConsoleTransport({ baseUrl: api.baseUrl, csrfToken: () => "t", onUnauthenticated: () => {} }));
  });
  afterAll(() => api.close());

  it("puts an InvalidArgument refusal naming a field on that field, with the server's words", async () => {
    const d = describeError(await failure(client.revokeLicense({ licenseId: "l" })));
    expect(d.fieldErrors).toEqual({ reason: "a reason is required for the audit trail" });
    expect(d.reason).toBe("REASON_REQUIRED");
    expect(d.title).toBe("Check what you entered");
    expect(d.message).toBe("a reason is required for the audit trail");
  });

  it("names the setting a refused settings update was refused for", async () => {
    const d = describeError(await failure(client.updateSettings({})));
    expect(d.fieldErrors.grace_window).toMatch(/grace_window must be between/);
  });

  it("marks a lost optimistic-concurrency race as a conflict to reload", async () => {
    const d = describeError(await failure(client.getSettings({})));
    expect(d.conflict).toBe(true);
    expect(d.code).toBe(Code.Aborted);
    expect(d.title).toBe("Changed by someone else");
    expect(d.metadata.version).toBe("4");
  });

  it("explains a domain reason in a sentence, with no bare code number and no field", async () => {
    const d = describeError(await failure(client.rebindLicense({})));
    expect(d.reason).toBe("LICENSE_REVOKED");
    expect(d.explanation).toMatch(/revoked/);
    expect(d.fieldErrors).toEqual({});
    expect(`${d.title} ${d.message}`).not.toMatch(/\b9\b|\[failed_precondition\]/);
  });

  it("never shows what a server failure's cause said", async () => {
    const d = describeError(await failure(client.getDeployment({})));
    expect(d.code).toBe(Code.Internal);
    expect(d.title).toBe("The server failed");
    expect(d.message).not.toMatch(/SELECT|secrets|app\.ts/);
  });

  it("says the server could not be reached when nothing answers", async () => {
    const closed = await startTestApi(() => {});
    await closed.close();
    const offline = createClient(LicensingService, createConsoleTransport({ baseUrl: closed.baseUrl, csrfToken: () => "t", onUnauthenticated: () => {} }));
    const err = await failure(offline.getSettings({}));
    const d = describeError(err);
    expect(d.title).toBe("Could not reach the console server");
    expect(isRetryable(err)).toBe(true);
  });

  it("treats anything that is not a Connect error as unreachable, and refusals as not worth retrying", () => {
    expect(describeError(new TypeError("x")).title).toBe("Could not reach the console server");
    expect(isRetryable(new ConnectError("no", Code.PermissionDenied))).toBe(false);
    expect(isRetryable(new ConnectError("down", Code.Unavailable))).toBe(true);
  });

  it("bounds what it shows of an oversized message", () => {
    const d = describeError(new ConnectError("x".repeat(10_000), Code.InvalidArgument));
    expect(d.message.length).toBeLessThanOrEqual(2001);
  });
});
