import { createClient, Code, ConnectError } from "@connectrpc/connect";
import { LicensingService } from "@lcp/proto/licensing/v1/licensing_service_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createConsoleTransport } from "../src/lib/transport.js";
import { startTestApi, type TestApi } from "./support.js";

describe("the console's transport", () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi((router) =>
      router.service(LicensingService, {
        getSettings: () => ({ settings: { version: 7n } }),
        getLicense: () => {
          throw new ConnectError("session expired", Code.Unauthenticated);
        },
        getDeployment: () => {
          throw new ConnectError("needs license.read", Code.PermissionDenied);
        },
      }),
    );
  });
  afterAll(() => api.close());

  it("sends the session's CSRF token on every call, in the binary Connect protocol under /api", async () => {
    let token = "first-token";
    const client = createClient(LicensingService, createConsoleTransport({ baseUrl: api.baseUrl, csrfToken: () => token, onUnauthenticated: () => {} }));
    const res = await client.getSettings({});
    expect(res.settings?.version).toBe(7n);
    token = "second-token";
    await client.getSettings({});
    const [first, second] = api.received.slice(-2);
    expect(first?.["x-csrf-token"]).toBe("first-token");
    expect(second?.["x-csrf-token"]).toBe("second-token");
    expect(first?.["content-type"]).toBe("application/proto");
  });

  it("sends the operator to sign in when a call answers Unauthenticated, and still fails the call", async () => {
    let signIns = 0;
    const client = createClient(LicensingService, createConsoleTransport({ baseUrl: api.baseUrl, csrfToken: () => "t", onUnauthenticated: () => signIns++ }));
    await expect(client.getLicense({ licenseId: "x" })).rejects.toMatchObject({ code: Code.Unauthenticated });
    expect(signIns).toBe(1);
  });

  it("does not send the operator to sign in for a refusal of permission", async () => {
    let signIns = 0;
    const client = createClient(LicensingService, createConsoleTransport({ baseUrl: api.baseUrl, csrfToken: () => "t", onUnauthenticated: () => signIns++ }));
    await expect(client.getDeployment({ deploymentId: "x" })).rejects.toMatchObject({ code: Code.PermissionDenied });
    expect(signIns).toBe(0);
  });
});
