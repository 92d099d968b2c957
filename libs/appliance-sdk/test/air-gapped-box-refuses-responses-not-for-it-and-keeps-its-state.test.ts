import { readFile } from "node:fs/promises";
import { afterEach, describe, expect, it } from "vitest";
import { pendingRequestPath, type Appliance, type LeaseRejectedEvent, type OfflineResponseRefusedEvent } from "@lcp/appliance-sdk";
import { generateSigningKey } from "@lcp/tokens";
import { createAirGap, type AirGap } from "./support/air-gap.js";
import { DEPLOYMENT_ID } from "./support/scripted-server.js";

let gap: AirGap;
// The scripted signer counts every lease it signs, refused ones included: any newer seq will do.
const RENEWED = { answer: "ACTIVE", leaseSeq: expect.toSatisfy((seq: number) => seq > 1), state: { state: "ACTIVE" } };
afterEach(async () => gap?.world.close());

async function readOrNull(path: string): Promise<string | null> {
  return readFile(path, "utf8").catch(() => null);
}

/** An air-gapped box activated by files (seq 1), waiting on a renewal request; and its activation answer. */
async function boxAwaitingRenewal() {
  gap = await createAirGap();
  const box = await gap.make();
  const activation = await gap.answerActivation(await box.writeActivationRequest());
  await box.importResponse(activation);
  const request = await box.writeRenewalRequest({ scans: 1 });
  return { box, activation, request };
}

/**
 * Imports `file`, expects the refusal `code` (thrown and emitted), and that the state file, the
 * pending request and the box's view are exactly as before.
 */
async function expectRefused(box: Appliance, file: string, code: string): Promise<void> {
  const stateFile = gap.world.stateFile;
  const before = { state: await readOrNull(stateFile), pending: await readOrNull(pendingRequestPath(stateFile)), status: box.status() };
  const refusals: OfflineResponseRefusedEvent[] = [];
  const off = box.on("offline-response-refused", (e) => refusals.push(e));
  await expect(box.importResponse(file)).rejects.toMatchObject({ name: "OfflineFileError", code });
  off();
  expect(refusals).toEqual([expect.objectContaining({ code, kind: before.status.pendingRequest?.kind ?? null })]);
  expect(await readOrNull(stateFile)).toBe(before.state);
  expect(await readOrNull(pendingRequestPath(stateFile))).toBe(before.pending);
  expect(box.status()).toEqual(before.status);
}

/** The file with one payload claim changed and the signature kept. */
function tampered(file: string, change: Record<string, unknown>): string {
  const [header, payload, signature] = file.split(".");
  const claims = { ...JSON.parse(Buffer.from(payload!, "base64url").toString("utf8")), ...change };
  return [header, Buffer.from(JSON.stringify(claims)).toString("base64url"), signature].join(".");
}

describe("an air-gapped box refuses a response not meant for it, and keeps its state and pending request", () => {
  it("refuses a response for another box's fingerprint, then imports its own", async () => {
    const { box, request } = await boxAwaitingRenewal();
    await expectRefused(box, await gap.answerRenewal(request, { fph: "b".repeat(64) }), "RESPONSE_FOR_ANOTHER_BOX");
    expect(await box.importResponse(await gap.answerRenewal(request))).toMatchObject(RENEWED);
  });

  it("refuses a response signed by a certificate of a forged CA that names licensing", async () => {
    const { box, request } = await boxAwaitingRenewal();
    const forged = await gap.world.server.pki.foreignService("licensing");
    await expectRefused(box, await gap.answerRenewal(request, { signer: forged }), "FILE_UNTRUSTED_SIGNER");
    // Our CA's certificate of another service is not licensing's either.
    await expectRefused(box, await gap.answerRenewal(request, { signer: await gap.world.server.pki.service("console") }), "FILE_UNTRUSTED_SIGNER");
    expect(await box.importResponse(await gap.answerRenewal(request))).toMatchObject(RENEWED);
  });

  it("refuses a tampered response (a claim changed under the signature) and garbage", async () => {
    const { box, request } = await boxAwaitingRenewal();
    const honest = await gap.answerRenewal(request);
    await expectRefused(box, tampered(honest, { ren: 4_000_000_000 }), "FILE_BAD_SIGNATURE");
    await expectRefused(box, "not a response", "FILE_MALFORMED");
    await expectRefused(box, "x".repeat(20_000), "FILE_MALFORMED");
    expect(await box.importResponse(honest)).toMatchObject(RENEWED);
  });

  it("refuses a replayed response: the answer to an older request, and the same answer imported twice", async () => {
    const { box, request } = await boxAwaitingRenewal();
    const old = await gap.answerRenewal(request);
    // The operator writes a new request before the old answer comes back: that answer is void.
    const newer = await box.writeRenewalRequest();
    await expectRefused(box, old, "RESPONSE_NOT_FOR_THIS_REQUEST");
    const current = await gap.answerRenewal(newer);
    expect(await box.importResponse(current)).toMatchObject(RENEWED);
    await expectRefused(box, current, "NO_PENDING_REQUEST");
    await box.writeRenewalRequest();
    await expectRefused(box, current, "RESPONSE_NOT_FOR_THIS_REQUEST");
    await expectRefused(box, old, "RESPONSE_NOT_FOR_THIS_REQUEST");
  });

  it("refuses a response whose lease seq is not above the one held, and reports the lease", async () => {
    const { box, request } = await boxAwaitingRenewal();
    const rejected: LeaseRejectedEvent[] = [];
    box.on("lease-rejected", (e) => rejected.push(e));
    await expectRefused(box, await gap.answerRenewal(request, { seq: 1 }), "LEASE_SEQ_NOT_NEWER");
    expect(rejected).toEqual([expect.objectContaining({ code: "LEASE_SEQ_NOT_NEWER", seq: 1 })]);
    // A lease signed by a key outside the JWKS the answer carries is refused like an online one.
    const stranger = await generateSigningKey();
    await expectRefused(box, await gap.answerRenewal(request, { seq: 9, leaseKey: stranger }), "TOKEN_UNKNOWN_KEY");
    expect(await box.importResponse(await gap.answerRenewal(request, { seq: 10 }))).toMatchObject({ leaseSeq: 10 });
  });

  it("refuses a response of the wrong kind, for another deployment, or another licence", async () => {
    const { box, activation, request } = await boxAwaitingRenewal();
    await expectRefused(box, activation, "FILE_WRONG_KIND");
    await expectRefused(box, await gap.answerRenewal(request, { dep: "dep-9999" }), "RESPONSE_WRONG_DEPLOYMENT");
    await expectRefused(box, await gap.answerRenewal(request, { locked: "REVOKED", sub: "lic-9999" }), "RESPONSE_WRONG_LICENSE");
    expect(box.state()).toEqual({ state: "ACTIVE" });
  });

  it("refuses an activation answer whose certificate is for another key, and writes no state file", async () => {
    gap = await createAirGap();
    const box = await gap.make();
    const request = await box.writeActivationRequest();
    const stranger = await gap.world.server.pki.appliance(DEPLOYMENT_ID, {});
    await expectRefused(box, await gap.answerActivation(request, { certificatePem: stranger.certPem }), "CERTIFICATE_INVALID");
    expect(await readOrNull(gap.world.stateFile)).toBeNull();
    expect(await box.importResponse(await gap.answerActivation(request))).toMatchObject({ answer: "ACTIVE", state: { state: "ACTIVE" } });
  });
});
