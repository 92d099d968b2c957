import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { LicensingService, OfflineAnswerSchema } from "@lcp/proto/licensing/v1/licensing_service_pb";
import { DeploymentState, LockReason } from "@lcp/proto/licensing/v1/types_pb";
import { DomainError, toConnectError } from "@lcp/rpc";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeError } from "../src/lib/errors.js";
import { formatDateTime } from "../src/lib/format.js";
import { explainAnswer } from "../src/lib/offline-answer.js";
import { createConsoleTransport } from "../src/lib/transport.js";
import { failure, startTestApi, type TestApi } from "./support.js";

const LEASE_END = new Date("2027-03-01T12:00:00Z");
const RENEW = new Date("2027-01-01T12:00:00Z");

describe("answers to air-gapped boxes, in words", () => {
  let api: TestApi;
  let client: ReturnType<typeof createClient<typeof LicensingService>>;
  beforeAll(async () => {
    api = await startTestApi((router) =>
      router.service(LicensingService, {
        respondToActivation: (req) => {
          if (req.requestFile === "forged") throw toConnectError(new DomainError("FILE_BAD_SIGNATURE", "the file's signature does not verify", { field: "request_file" }));
          return {
            responseFile: "h.p.s",
            answer: create(OfflineAnswerSchema, {
              licenseId: "lic-1",
              deploymentId: "dep-1",
              state: DeploymentState.ACTIVE,
              leaseSeq: 1n,
              leaseExpireTime: timestampFromDate(LEASE_END),
              renewTime: timestampFromDate(RENEW),
              responseExpireTime: timestampFromDate(RENEW),
            }),
          };
        },
        respondToRenewal: (req) => {
          if (req.requestFile === "online") throw toConnectError(new DomainError("NOT_AIR_GAPPED", "deployment dep-1 is ONLINE"));
          return { responseFile: "h.p.s", answer: create(OfflineAnswerSchema, { licenseId: "lic-1", deploymentId: "dep-1", state: DeploymentState.LOCKED, lockReason: LockReason.REVOKED }) };
        },
        setConnectivity: () => {
          throw toConnectError(new DomainError("REASON_REQUIRED", "a reason is required for the audit trail", { field: "reason" }));
        },
      }),
    );
    client = createClient(LicensingService, createConsoleTransport({ baseUrl: api.baseUrl, csrfToken: () => "t", onUnauthenticated: () => {} }));
  });
  afterAll(() => api.close());

  it("says an answer lets the box run, until when, and when it asks again", async () => {
    const res = await client.respondToActivation({ requestFile: "a.b.c" });
    const text = explainAnswer(res.answer!);
    expect(text).toMatch(/^The box runs once it imports this file\./);
    expect(text).toContain(`until ${formatDateTime(LEASE_END)}`);
    expect(text).toContain(`from ${formatDateTime(RENEW)}`);
  });

  it("says an answer that locks the box does so, and why, and that it is to be carried back all the same", async () => {
    const res = await client.respondToRenewal({ requestFile: "a.b.c" });
    expect(explainAnswer(res.answer!)).toBe("This answer locks the box: its licence is revoked. Carry it back all the same, so the box stops.");
  });

  it("puts a refused file on the request field, with the reason in words", async () => {
    const d = describeError(await failure(client.respondToActivation({ requestFile: "forged" })));
    expect(d.fieldErrors).toEqual({ request_file: "the file's signature does not verify" });
    expect(d.reason).toBe("FILE_BAD_SIGNATURE");
    expect(d.explanation).toMatch(/changed after the box wrote it/);
  });

  it("explains a file for an online deployment, and a connectivity switch without a reason", async () => {
    const online = describeError(await failure(client.respondToRenewal({ requestFile: "online" })));
    expect(online.title).toBe("Not possible right now");
    expect(online.explanation).toMatch(/switch it to air-gapped/);
    const switched = describeError(await failure(client.setConnectivity({ deploymentId: "dep-1" })));
    expect(switched.fieldErrors.reason).toBe("a reason is required for the audit trail");
  });
});
