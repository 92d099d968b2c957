/**
 * Bad inputs, each with the right code, a clear message and no row changed (refusals of changes
 * add only their DENIED audit event): unknown ids; malformed, forged, expired and wrong-typ
 * licence tokens; a token for another licence; garbage CSRs and a CSR for another deployment;
 * empty and 10 kB fingerprints; out-of-range settings; page sizes; unknown enum values.
 */
import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { applianceSpiffeId, generateKeyAndCsr } from "@lcp/pki";
import { DeploymentKind, DeploymentState, LicenseStatus, SubscriptionStatus } from "@lcp/proto/licensing/v1/types_pb";
import { testDatabases } from "@lcp/testing/db";
import { generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  activateBox,
  auditEvents,
  expectRefusal,
  newBox,
  provisionOnPrem,
  signAsLicensing,
  snapshot,
  startHarness,
  type Box,
  type LicensingHarness,
} from "./support.js";

describe.each(testDatabases())("bad inputs ($name)", (tdb) => {
  let h: LicensingHarness;
  beforeAll(async () => {
    h = await startHarness(tdb);
  });
  afterAll(async () => {
    await h?.close();
  });

  /** Expects `call` to fail with `code`/`reason`, a message matching `message`, and no row but outbox events changed. */
  async function refusedWithoutChange(call: () => Promise<unknown>, code: Code, reason: string | undefined, message: RegExp) {
    const before = await snapshot(h);
    const eventsBefore = (await auditEvents(h)).length;
    const err = await expectRefusal(call(), code, reason);
    expect(err.rawMessage).toMatch(message);
    const after = await snapshot(h);
    for (const table of ["deployment", "license", "settings", "certificate", "directive"]) expect(after[table], table).toBe(before[table]);
    const added = (await auditEvents(h)).slice(eventsBefore);
    for (const e of added) expect(e.outcome, e.action).not.toBe("OUTCOME_SUCCESS");
  }

  const activate = (license: { id: string; token: string }, box: Box, overrides: Record<string, unknown> = {}) =>
    h.anonymousAppliance.activate({
      licenseId: license.id,
      licenseToken: license.token,
      fingerprint: box.fingerprint,
      csrPem: box.csrPem,
      ...overrides,
    });

  it("unknown ids are NotFound", async () => {
    const support = h.admin("super_admin");
    const id = randomUUID();
    await refusedWithoutChange(() => support.getDeployment({ deploymentId: id }), Code.NotFound, "NOT_FOUND", /does not exist/);
    await refusedWithoutChange(() => support.getLicense({ licenseId: id }), Code.NotFound, "NOT_FOUND", /does not exist/);
    await refusedWithoutChange(() => support.issueLicense({ deploymentId: id }), Code.NotFound, "NOT_FOUND", /does not exist/);
    await refusedWithoutChange(() => support.revokeLicense({ licenseId: id, reason: "x" }), Code.NotFound, "NOT_FOUND", /does not exist/);
    await refusedWithoutChange(() => support.rebindLicense({ licenseId: id, newFingerprint: "f", reason: "x" }), Code.NotFound, "NOT_FOUND", /does not exist/);
    await refusedWithoutChange(
      () => support.setSubscriptionStatus({ deploymentId: id, status: SubscriptionStatus.INVALID }),
      Code.NotFound,
      "NOT_FOUND",
      /does not exist/,
    );
    // A genuine token for a licence this control plane does not know.
    const dep = randomUUID();
    const now = Math.floor(Date.now() / 1000);
    const token = await signAsLicensing(h, "license+jwt", { sub: id, dep, ent: [], nbf: now, exp: now + 3600, jti: randomUUID() });
    await refusedWithoutChange(() => activate({ id, token }, { fingerprint: "f", csrPem: "-----BEGIN CERTIFICATE REQUEST-----\nx\n-----END CERTIFICATE REQUEST-----", keyPem: "" }), Code.NotFound, "NOT_FOUND", /does not exist/);
    // Malformed ids are InvalidArgument, not a lookup.
    await refusedWithoutChange(() => support.getDeployment({ deploymentId: "not-an-id" }), Code.InvalidArgument, "INVALID_ARGUMENT", /deployment_id must be a UUID/);
    await refusedWithoutChange(() => support.getDeployment({ deploymentId: "" }), Code.InvalidArgument, "INVALID_ARGUMENT", /deployment_id is required/);
  });

  it("licence tokens: malformed, forged, expired, wrong typ, for another licence", async () => {
    const { deployment, license } = await provisionOnPrem(h);
    const box = await newBox(h, deployment.id);
    await refusedWithoutChange(() => activate({ id: license.id, token: "garbage" }, box), Code.InvalidArgument, "TOKEN_MALFORMED", /not a compact JWS/);
    await refusedWithoutChange(() => activate({ id: license.id, token: "a.b.c" }, box), Code.InvalidArgument, "TOKEN_MALFORMED", /token/);

    // Forged: the same claims, signed by a key that is not in the JWKS (a fresh kid, then a known kid).
    const [, payload] = license.token.split(".");
    const claims = JSON.parse(Buffer.from(payload!, "base64url").toString("utf8")) as Record<string, unknown>;
    const { privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519" });
    const knownKid = JSON.parse(Buffer.from(license.token.split(".")[0]!, "base64url").toString("utf8")).kid as string;
    for (const kid of ["forged-kid", knownKid]) {
      const forged = await new SignJWT(claims).setProtectedHeader({ alg: "EdDSA", typ: "license+jwt", kid }).sign(privateKey);
      await refusedWithoutChange(
        () => activate({ id: license.id, token: forged }, box),
        Code.InvalidArgument,
        kid === knownKid ? "TOKEN_BAD_SIGNATURE" : "TOKEN_UNKNOWN_KEY",
        /signature is invalid|not signed by a current key of this control plane/,
      );
    }
    // A tampered payload under a genuine signature.
    const tampered = [license.token.split(".")[0], Buffer.from(JSON.stringify({ ...claims, ent: ["everything"] })).toString("base64url"), license.token.split(".")[2]].join(".");
    await refusedWithoutChange(() => activate({ id: license.id, token: tampered }, box), Code.InvalidArgument, "TOKEN_BAD_SIGNATURE", /signature is invalid/);

    // Expired: genuinely signed, term over.
    const now = Math.floor(Date.now() / 1000);
    const { iss: _iss, iat: _iat, ...unsigned } = claims;
    const expired = await signAsLicensing(h, "license+jwt", { ...unsigned, nbf: now - 7200, exp: now - 3600 } as never);
    await refusedWithoutChange(() => activate({ id: license.id, token: expired }, box), Code.FailedPrecondition, "LICENSE_EXPIRED", /term has ended/);

    // Wrong typ: a lease for this very licence never passes as a licence.
    const lease = await signAsLicensing(h, "lease+jwt", {
      sub: license.id,
      dep: deployment.id,
      fph: "a".repeat(64),
      st: "ACTIVE",
      seq: 1,
      exp: now + 3600,
    });
    await refusedWithoutChange(() => activate({ id: license.id, token: lease }, box), Code.InvalidArgument, "TOKEN_WRONG_TYPE", /not a licence token/);

    // A genuine token of another licence.
    const other = await provisionOnPrem(h);
    await refusedWithoutChange(() => activate({ id: license.id, token: other.license.token }, box), Code.PermissionDenied, "PERMISSION_DENIED", /another licence/);

    // None of it bound anything: the right box still activates.
    expect((await activateBox(h, license, box)).state).toBe(DeploymentState.ACTIVE);
  });

  it("CSRs: garbage, and one asking for another deployment's name", async () => {
    const { deployment, license } = await provisionOnPrem(h);
    const other = await provisionOnPrem(h);
    const box = await newBox(h, deployment.id);
    await refusedWithoutChange(() => activate(license, box, { csrPem: "not a csr" }), Code.InvalidArgument, "CSR_MALFORMED", /not a PEM PKCS#10/);
    await refusedWithoutChange(
      () => activate(license, box, { csrPem: "-----BEGIN CERTIFICATE REQUEST-----\nZ2FyYmFnZQ==\n-----END CERTIFICATE REQUEST-----\n" }),
      Code.InvalidArgument,
      "CSR_MALFORMED",
      /./,
    );
    await refusedWithoutChange(() => activate(license, box, { csrPem: "" }), Code.InvalidArgument, "INVALID_ARGUMENT", /csr_pem is required/);
    const stolenName = await generateKeyAndCsr({ commonName: other.deployment.id, spiffeId: applianceSpiffeId(h.pki.trustDomain, other.deployment.id) });
    await refusedWithoutChange(() => activate(license, box, { csrPem: stolenName.csrPem }), Code.InvalidArgument, "CSR_NAME_NOT_ALLOWED", /./);
    expect((await h.admin("support").getDeployment({ deploymentId: deployment.id })).deployment!.state).toBe(DeploymentState.PENDING);
  });

  it("fingerprints: empty and 10 kB", async () => {
    const { deployment, license } = await provisionOnPrem(h);
    const box = await newBox(h, deployment.id);
    await refusedWithoutChange(() => activate(license, box, { fingerprint: "" }), Code.InvalidArgument, "FINGERPRINT_INVALID", /fingerprint must not be empty/);
    await refusedWithoutChange(() => activate(license, box, { fingerprint: "x".repeat(10_240) }), Code.InvalidArgument, "FINGERPRINT_INVALID", /at most 512 bytes/);
    await refusedWithoutChange(
      () => h.admin("support").rebindLicense({ licenseId: license.id, newFingerprint: "x".repeat(10_240), reason: "swap" }),
      Code.InvalidArgument,
      "FINGERPRINT_INVALID",
      /new_fingerprint must be at most 512 bytes/,
    );
    await refusedWithoutChange(() => h.admin("support").revokeLicense({ licenseId: license.id, reason: "  " }), Code.InvalidArgument, "REASON_REQUIRED", /reason is required/);
  });

  it("settings out of range, and a stale expected_version", async () => {
    const admin = h.admin("super_admin");
    const set = (field: string, ms: number) => ({ settings: { [field]: durationFromMs(ms) }, updateMask: { paths: [field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)] } });
    await refusedWithoutChange(() => admin.updateSettings(set("graceWindow", 0)), Code.InvalidArgument, "SETTINGS_OUT_OF_RANGE", /grace_window must be between 1 s and 365 d/);
    await refusedWithoutChange(() => admin.updateSettings(set("graceWindow", 366 * 86_400_000)), Code.InvalidArgument, "SETTINGS_OUT_OF_RANGE", /grace_window/);
    await refusedWithoutChange(() => admin.updateSettings(set("heartbeatTimeout", 15 * 86_400_000)), Code.InvalidArgument, "SETTINGS_OUT_OF_RANGE", /heartbeat_timeout must be greater than heartbeat_interval .* and less than grace_window/);
    await refusedWithoutChange(() => admin.updateSettings(set("heartbeatInterval", -1000)), Code.InvalidArgument, "SETTINGS_OUT_OF_RANGE", /heartbeat_interval/);
    await refusedWithoutChange(() => admin.updateSettings({ settings: {}, updateMask: { paths: ["colour"] } }), Code.InvalidArgument, "INVALID_ARGUMENT", /not a settings duration/);
    const version = (await admin.getSettings({})).settings!.version;
    await refusedWithoutChange(
      () => admin.updateSettings({ ...set("graceWindow", 86_400_000), expectedVersion: version + 5n }),
      Code.Aborted,
      "CONFLICT",
      /settings are at version/,
    );
    const ok = await admin.updateSettings({ ...set("graceWindow", 10 * 86_400_000), expectedVersion: version });
    expect(ok.settings!.version).toBe(version + 1n);
  });

  it("page sizes and unknown enum values", async () => {
    const reader = h.admin("auditor");
    const onboarding = h.admin("onboarding");
    for (let i = 0; i < 3; i++) await provisionOnPrem(h);
    const all = await reader.listLicenses({ pageSize: 0 });
    expect(all.licenses.length).toBeGreaterThanOrEqual(3);
    await refusedWithoutChange(() => reader.listLicenses({ pageSize: -1 }), Code.InvalidArgument, "INVALID_ARGUMENT", /page_size must be an integer between 0 and 500/);
    await refusedWithoutChange(() => reader.listLicenses({ pageSize: 10_000 }), Code.InvalidArgument, "INVALID_ARGUMENT", /page_size/);
    await refusedWithoutChange(() => reader.listDeployments({ pageSize: 10_000 }), Code.InvalidArgument, "INVALID_ARGUMENT", /page_size/);
    await refusedWithoutChange(() => reader.listLicenses({ pageToken: "bogus" }), Code.InvalidArgument, "PAGE_TOKEN_INVALID", /page_token/);
    await refusedWithoutChange(
      () => onboarding.provisionDeployment({ name: "n", customer: "c", kind: 99 as DeploymentKind }),
      Code.InvalidArgument,
      "INVALID_ARGUMENT",
      /kind 99 is not a known deployment kind/,
    );
    await refusedWithoutChange(
      () => onboarding.provisionDeployment({ name: "n", customer: "c", kind: DeploymentKind.UNSPECIFIED }),
      Code.InvalidArgument,
      "INVALID_ARGUMENT",
      /kind is required/,
    );
    const { deployment } = await provisionOnPrem(h);
    await refusedWithoutChange(
      () => h.admin("support").setSubscriptionStatus({ deploymentId: deployment.id, status: 99 as SubscriptionStatus }),
      Code.InvalidArgument,
      "INVALID_ARGUMENT",
      /status 99 is not a known subscription status/,
    );
    await refusedWithoutChange(() => reader.listLicenses({ statuses: [99 as LicenseStatus] }), Code.InvalidArgument, "INVALID_ARGUMENT", /unknown licence status/);
    await refusedWithoutChange(() => reader.listDeployments({ states: [99 as DeploymentState] }), Code.InvalidArgument, "INVALID_ARGUMENT", /unknown deployment state/);
    await refusedWithoutChange(
      () => onboarding.provisionDeployment({ name: "", customer: "c", kind: DeploymentKind.CLOUD }),
      Code.InvalidArgument,
      "INVALID_ARGUMENT",
      /name is required/,
    );
  });
});
