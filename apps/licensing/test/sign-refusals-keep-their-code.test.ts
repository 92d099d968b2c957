/**
 * A refusal from signing-keys that no retry can change keeps its Connect code and ErrorInfo
 * reason on the way through licensing, so callers do not retry it for ever; only signing-keys
 * being unreachable is Unavailable. Over the real services:
 * - every key revoked (none ACTIVE): IssueLicense answers FailedPrecondition NO_ACTIVE_KEY;
 * - claims over 16 KiB: the gateway's Sign answers InvalidArgument;
 * - signing-keys down: Unavailable.
 */
import { Code } from "@connectrpc/connect";
import { DeploymentKind } from "@lcp/proto/licensing/v1/types_pb";
import { SigningKeyService } from "@lcp/proto/signing/v1/signing_key_service_pb";
import { createClient, createLogger } from "@lcp/rpc";
import { testDatabases } from "@lcp/testing/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSigningKeysGateway } from "../src/signing-keys.js";
import { freePort } from "./heartbeat-support.js";
import { kidOf, signingAdmin } from "./signing-admin.js";
import { expectRefusal, provisionOnPrem, startHarness, type LicensingHarness } from "./support.js";

describe.each(testDatabases())("Sign refusals keep their code ($name)", (tdb) => {
  let h: LicensingHarness;
  beforeAll(async () => {
    h = await startHarness(tdb);
  });
  afterAll(async () => {
    await h?.close();
  });

  const gateway = async (baseUrl: string) => {
    const own = await h.pki.service("licensing");
    return createSigningKeysGateway({
      client: createClient(SigningKeyService, { baseUrl, tls: { caPem: h.pki.ca.certPem, certPem: own.certPem, keyPem: own.keyPem }, retries: 0 }),
      log: createLogger("licensing", "silent"),
    });
  };

  it("claims over 16 KiB: InvalidArgument from Sign reaches the caller as InvalidArgument", async () => {
    const signing = await gateway(h.signingKeys.url);
    await expectRefusal(signing.sign("license+jwt", { sub: "lic-1", dep: "dep-1", ent: ["x".repeat(17 * 1024)] }), Code.InvalidArgument, "INVALID_ARGUMENT");
  });

  it("signing-keys unreachable: Unavailable, the one answer worth retrying", async () => {
    const signing = await gateway(`https://127.0.0.1:${await freePort()}`);
    await expectRefusal(signing.sign("license+jwt", { sub: "lic-1" }), Code.Unavailable);
  });

  it("no ACTIVE key: IssueLicense answers FailedPrecondition NO_ACTIVE_KEY, not Unavailable", async () => {
    const { license } = await provisionOnPrem(h);
    const admin = await signingAdmin(h);
    await admin.revokeKey({ kid: kidOf(license.token), reason: "leaked, no successor yet" });
    await expectRefusal(
      h.admin("onboarding").provisionDeployment({ name: "after-revocation", customer: "St. Example Hospital", kind: DeploymentKind.ON_PREM, entitlements: ["imaging"] }),
      Code.FailedPrecondition,
      "NO_ACTIVE_KEY",
    );
    // The operator rotates: signing works again.
    await admin.rotateKeys({ reason: "successor" });
    expect((await provisionOnPrem(h)).license.token).not.toBe("");
  });
});
