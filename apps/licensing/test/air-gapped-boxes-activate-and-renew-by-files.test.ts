/**
 * RespondToActivation and RespondToRenewal through the real server: the files a box would write
 * (real keys, real CSRs, signed as the SDK signs them), answered by licensing with a response
 * signed by its service certificate and a lease signed by signing-keys. Each refusal of the issue
 * has its code, its DENIED audit event, and no row changed.
 */
import { createHash, X509Certificate } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { Connectivity, DeploymentKind, DeploymentState, LockReason, SubscriptionStatus, type License } from "@lcp/proto/licensing/v1/types_pb";
import { testDatabases } from "@lcp/testing/db";
import {
  MAX_OFFLINE_FILE_BYTES,
  newOfflineNonce,
  signActivationRequest,
  signRenewalRequest,
  verifyLeaseToken,
  verifyOfflineResponse,
  type ActivationResponseClaims,
  type RenewalResponseClaims,
} from "@lcp/tokens";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditEvents, expectRefusal, newBox, snapshot, startHarness, TEST_ISSUER, type Box, type LicensingHarness } from "./support.js";

const hashOf = (fingerprint: string) => createHash("sha256").update(fingerprint, "utf8").digest("hex");

describe.each(testDatabases())("air-gapped boxes activate and renew by files ($name)", (tdb) => {
  let h: LicensingHarness;
  beforeAll(async () => {
    h = await startHarness(tdb);
  });
  afterAll(async () => {
    await h?.close();
  });

  /** A box of an air-gapped site holds its certificate once its activation response is imported. */
  type FileBox = Box & { certificatePem?: string };

  async function provision(connectivity = Connectivity.AIR_GAPPED): Promise<{ license: License; deploymentId: string }> {
    const res = await h.admin("onboarding").provisionDeployment({
      name: `ward-${Math.random().toString(16).slice(2, 8)}`,
      customer: "Closed Network Hospital",
      kind: DeploymentKind.ON_PREM,
      entitlements: ["imaging"],
      connectivity,
    });
    return { license: res.license!, deploymentId: res.deployment!.id };
  }

  const activationRequest = (license: License, box: FileBox, signWith = box.keyPem) =>
    signActivationRequest({
      privateKeyPem: signWith,
      lic: license.id,
      tok: license.token,
      fph: hashOf(box.fingerprint),
      csr: box.csrPem,
      nce: newOfflineNonce(),
      boxTime: new Date(),
      agv: "sdk-test/1",
    });

  const renewalRequest = (license: License, box: FileBox, seq: number, certificatePem = box.certificatePem!, keyPem = box.keyPem) =>
    signRenewalRequest({
      privateKeyPem: keyPem,
      lic: license.id,
      dep: license.deploymentId,
      fph: hashOf(box.fingerprint),
      seq,
      crt: certificatePem,
      nce: newOfflineNonce(),
      boxTime: new Date(),
      use: { uptime_s: 86_400, studies: 42 },
    });

  const trust = () => ({ caPem: h.pki.ca.certPem, signerUri: h.pki.serviceId("licensing"), issuer: TEST_ISSUER, now: h.clock.now(), clockToleranceMs: 60_000 });

  async function activateByFile(license: License, box: FileBox): Promise<ActivationResponseClaims> {
    const res = await h.admin("onboarding").respondToActivation({ requestFile: await activationRequest(license, box) });
    const verdict = await verifyOfflineResponse(res.responseFile, "activationResponse", trust());
    if (!verdict.ok) throw new Error(`${verdict.code}: ${verdict.message}`);
    box.certificatePem = verdict.claims.crt;
    return verdict.claims;
  }

  async function renewByFile(license: License, box: FileBox, seq: number) {
    const res = await h.admin("support").respondToRenewal({ requestFile: await renewalRequest(license, box, seq) });
    const verdict = await verifyOfflineResponse(res.responseFile, "renewalResponse", trust());
    if (!verdict.ok) throw new Error(`${verdict.code}: ${verdict.message}`);
    return { claims: verdict.claims, answer: res.answer! };
  }

  async function leaseOf(claims: ActivationResponseClaims | RenewalResponseClaims) {
    const verdict = await verifyLeaseToken(claims.lse!, { jwks: claims.jwks, issuer: TEST_ISSUER, now: h.clock.now() });
    if (!verdict.ok) throw new Error(`${verdict.code}: ${verdict.message}`);
    return verdict.claims;
  }

  /** Expects `call` refused with `code`/`reason`, no row but the outbox changed, and a DENIED event of `action`. */
  async function refusedWithoutChange(call: () => Promise<unknown>, code: Code, reason: string, action: string) {
    const before = await snapshot(h);
    const eventsBefore = (await auditEvents(h)).length;
    await expectRefusal(call(), code, reason);
    const after = await snapshot(h);
    for (const table of ["deployment", "license", "settings", "certificate", "directive"]) expect(after[table], table).toBe(before[table]);
    const added = (await auditEvents(h)).slice(eventsBefore);
    expect(added.map((e) => [e.action, e.outcome, e.details["code"]])).toContainEqual([action, "OUTCOME_DENIED", reason]);
  }

  it("activates by files: the answer holds the certificate, a lease for this box, the JWKS and when to renew; audited as the operator's, channel file", async () => {
    const { license, deploymentId } = await provision();
    const box: FileBox = await newBox(h, deploymentId);
    const claims = await activateByFile(license, box);
    expect(claims).toMatchObject({ sub: license.id, dep: deploymentId, fph: hashOf(box.fingerprint), st: "ACTIVE" });
    // The certificate is for the key of the request.
    expect(new X509Certificate(claims.crt).checkPrivateKey((await import("node:crypto")).createPrivateKey(box.keyPem))).toBe(true);
    const lease = await leaseOf(claims);
    const settings = (await h.admin("support").getSettings({})).settings!;
    const airGappedLeaseSeconds = Number(settings.airGappedLease!.seconds);
    // exp is licensing's now + the lease length; iat is signing-keys' clock, which may be a second on.
    expect(lease.exp - lease.iat).toBeGreaterThanOrEqual(airGappedLeaseSeconds - 1);
    expect(lease.exp - lease.iat).toBeLessThanOrEqual(airGappedLeaseSeconds);
    expect(claims.ren! - claims.iat).toBe(Number(settings.airGappedRenewAfter!.seconds));
    expect(claims.set.graceWindowMs).toBe(airGappedLeaseSeconds * 1000);

    const { deployment } = await h.admin("support").getDeployment({ deploymentId });
    expect([deployment!.state, deployment!.connectivity]).toEqual([DeploymentState.ACTIVE, Connectivity.AIR_GAPPED]);
    const event = (await auditEvents(h)).find((e) => e.action === "license.activate" && e.resourceId === license.id);
    expect(event?.details).toMatchObject({ channel: "file", fingerprintHash: hashOf(box.fingerprint) });
  });

  it("renews by files: each answer's lease is newer, above what the box says it holds, and the usage is audited", async () => {
    const { license, deploymentId } = await provision();
    const box: FileBox = await newBox(h, deploymentId);
    const first = await leaseOf(await activateByFile(license, box));
    h.clock.advance(60_000);
    const renewed = await renewByFile(license, box, first.seq);
    const second = await leaseOf(renewed.claims);
    expect(second.seq).toBe(first.seq + 1);
    expect(renewed.answer).toMatchObject({ state: DeploymentState.ACTIVE, leaseSeq: BigInt(second.seq) });
    // A box ahead of us (a database restored from an older backup) still gets a lease it accepts.
    const ahead = await leaseOf((await renewByFile(license, box, 500)).claims);
    expect(ahead.seq).toBe(501);
    const event = (await auditEvents(h)).filter((e) => e.action === "license.renew" && e.resourceId === license.id).at(-1);
    expect(event).toMatchObject({ outcome: "OUTCOME_SUCCESS", details: { channel: "file", boxLeaseSeq: 500, usage: { uptime_s: 86_400, studies: 42 } } });
  });

  it("a suspended deployment's box gets a SUSPENDED lease; a revoked one a signed answer that locks it, and nothing changes", async () => {
    const { license, deploymentId } = await provision();
    const box: FileBox = await newBox(h, deploymentId);
    const first = await leaseOf(await activateByFile(license, box));
    await h.admin("support").setSubscriptionStatus({ deploymentId, status: SubscriptionStatus.INVALID, reason: "unpaid" });
    const suspended = await renewByFile(license, box, first.seq);
    expect((await leaseOf(suspended.claims)).st).toBe("SUSPENDED");

    await h.admin("support").revokeLicense({ licenseId: license.id, reason: "reported stolen" });
    const before = await snapshot(h);
    const locked = await renewByFile(license, box, first.seq + 1);
    expect(locked.claims).toMatchObject({ st: "LOCKED", rsn: "REVOKED" });
    expect(locked.claims.lse).toBeUndefined();
    expect(locked.answer).toMatchObject({ state: DeploymentState.LOCKED, lockReason: LockReason.REVOKED, leaseSeq: 0n });
    const after = await snapshot(h);
    for (const table of ["deployment", "license", "certificate", "directive"]) expect(after[table], table).toBe(before[table]);
    expect((await auditEvents(h)).at(-1)).toMatchObject({ action: "license.renew", outcome: "OUTCOME_DENIED", details: { answer: "LOCKED", code: "LICENSE_REVOKED" } });
    // And its activation request is refused for ever.
    await refusedWithoutChange(async () => h.admin("onboarding").respondToActivation({ requestFile: await activationRequest(license, box) }), Code.FailedPrecondition, "LICENSE_REVOKED", "license.activate");
  });

  it("a box the licence was rebound away from is told to lock", async () => {
    const { license, deploymentId } = await provision();
    const old: FileBox = await newBox(h, deploymentId);
    const first = await leaseOf(await activateByFile(license, old));
    await h.admin("support").rebindLicense({ licenseId: license.id, newFingerprint: "replacement-mainboard", reason: "mainboard replaced" });
    const answer = await renewByFile(license, old, first.seq);
    expect(answer.claims).toMatchObject({ st: "LOCKED", rsn: "REBOUND" });
    expect(answer.answer).toMatchObject({ state: DeploymentState.LOCKED, lockReason: LockReason.UNSPECIFIED });
  });

  it("refuses, each with its code and a DENIED event, changing nothing: a broken signature, another key than the CSR's, another box, an ONLINE deployment, a forged certificate, the wrong kind, an oversized file", async () => {
    const { license, deploymentId } = await provision();
    const box: FileBox = await newBox(h, deploymentId);
    const onboarding = h.admin("onboarding");

    const good = await activationRequest(license, box);
    const parts = good.split(".");
    const sig = parts[2]!;
    const broken = [parts[0], parts[1], (sig[0] === "A" ? "B" : "A") + sig.slice(1)].join(".");
    await refusedWithoutChange(() => onboarding.respondToActivation({ requestFile: broken }), Code.InvalidArgument, "FILE_BAD_SIGNATURE", "license.activate");

    const stranger = await newBox(h, deploymentId, box.fingerprint);
    await refusedWithoutChange(
      async () => onboarding.respondToActivation({ requestFile: await activationRequest(license, box, stranger.keyPem) }),
      Code.InvalidArgument,
      "REQUEST_KEY_MISMATCH",
      "license.activate",
    );

    await refusedWithoutChange(
      () => onboarding.respondToActivation({ requestFile: "x".repeat(MAX_OFFLINE_FILE_BYTES + 1) }),
      Code.InvalidArgument,
      "FILE_MALFORMED",
      "license.activate",
    );

    const online = await provision(Connectivity.ONLINE);
    const onlineBox: FileBox = await newBox(h, online.deploymentId);
    await refusedWithoutChange(
      async () => onboarding.respondToActivation({ requestFile: await activationRequest(online.license, onlineBox) }),
      Code.FailedPrecondition,
      "NOT_AIR_GAPPED",
      "license.activate",
    );

    await activateByFile(license, box);
    const second = await newBox(h, deploymentId, "another-box");
    await refusedWithoutChange(
      async () => onboarding.respondToActivation({ requestFile: await activationRequest(license, second) }),
      Code.FailedPrecondition,
      "FINGERPRINT_MISMATCH",
      "license.activate",
    );

    // A certificate for the same SPIFFE id from a CA that is not ours, signing with its own key.
    const forged = await h.pki.foreignAppliance(deploymentId);
    await refusedWithoutChange(
      async () => onboarding.respondToRenewal({ requestFile: await renewalRequest(license, box, 1, forged.certPem, forged.keyPem) }),
      Code.PermissionDenied,
      "CERTIFICATE_NOT_RECOGNISED",
      "license.renew",
    );

    await refusedWithoutChange(
      async () => onboarding.respondToActivation({ requestFile: await renewalRequest(license, box, 1) }),
      Code.InvalidArgument,
      "FILE_WRONG_KIND",
      "license.activate",
    );

    // An air-gapped deployment switched to ONLINE answers no more files.
    await h.admin("support").setConnectivity({ deploymentId, connectivity: Connectivity.ONLINE, reason: "site connected" });
    await refusedWithoutChange(
      async () => onboarding.respondToRenewal({ requestFile: await renewalRequest(license, box, 1) }),
      Code.FailedPrecondition,
      "NOT_AIR_GAPPED",
      "license.renew",
    );

    // Only roles that may issue answer files.
    await expectRefusal(h.admin("auditor").respondToActivation({ requestFile: good }), Code.PermissionDenied);
  });

  it("switching to ONLINE and back keeps the lease seq rising", async () => {
    const { license, deploymentId } = await provision();
    const box: FileBox = await newBox(h, deploymentId);
    const seqs = [(await leaseOf(await activateByFile(license, box))).seq];
    const support = h.admin("support");
    await support.setConnectivity({ deploymentId, connectivity: Connectivity.ONLINE, reason: "site connected for a week" });
    // Online, the box heartbeats with the certificate its file answer gave it.
    const beat = await h
      .applianceClient({ ...box, activation: { certificatePem: box.certificatePem } as never })
      .sendHeartbeat({ licenseId: license.id, fingerprint: box.fingerprint, lastLeaseSeq: BigInt(seqs[0]!) });
    expect(beat.state).toBe(DeploymentState.ACTIVE);
    await support.setConnectivity({ deploymentId, connectivity: Connectivity.AIR_GAPPED, reason: "closed again" });
    seqs.push((await leaseOf((await renewByFile(license, box, seqs[0]!)).claims)).seq);
    await support.setConnectivity({ deploymentId, connectivity: Connectivity.ONLINE, reason: "again" });
    await support.setConnectivity({ deploymentId, connectivity: Connectivity.AIR_GAPPED, reason: "and closed" });
    seqs.push((await leaseOf((await renewByFile(license, box, seqs[1]!)).claims)).seq);
    expect(seqs[1]).toBeGreaterThan(seqs[0]!);
    expect(seqs[2]).toBeGreaterThan(seqs[1]!);
    const row = (await h.sql<{ lease_seq: number | string }>(`select lease_seq from license where id = '${license.id}'`))[0]!;
    expect(Number(row.lease_seq)).toBe(seqs[2]);
  });
});
