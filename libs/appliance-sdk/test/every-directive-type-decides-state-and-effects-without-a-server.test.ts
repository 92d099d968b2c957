/**
 * The directive core (src/directives.ts) on its own: for each directive type, the state it leads
 * to and the effects, in order, that the shell must carry out. No server, no stream, no timers:
 * leases are real signatures from the scripted server's key, checked by the same function the
 * shell uses, and certificates are issued by a real CA.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { generateSigningKey, type GeneratedSigningKey } from "@lcp/tokens";
import { generateKeyAndCsr, issueCertificateFromCsr, loadCertificateAuthority, type CertificateAuthority } from "@lcp/pki";
import type { Directive } from "@lcp/proto/licensing/v1/types_pb";
import { applyDirective, dropLeaseIfReplacementDue, reportedLeaseSeq, type BoxState, type Decision, type Effect } from "../src/directives.js";
import { checkLease, checkOfferedLease, toApplianceLease } from "../src/lease.js";
import { parseJwks } from "../src/key-set.js";
import { STATE_FILE_VERSION } from "../src/state-file.js";
import { DEPLOYMENT_ID, DirectiveType, FINGERPRINT, ISSUER, createScriptedServer, type ScriptedServer } from "./support/scripted-server.js";
import { T0 } from "./support/fixture.js";

const WINDOW_MS = 120_000;
let server: ScriptedServer;
let ca: CertificateAuthority;
let spiffeId: string;
let held: { keyPem: string; certPem: string };
let base: BoxState;

beforeAll(async () => {
  server = await createScriptedServer({ serverClock: () => T0 });
  ca = await loadCertificateAuthority(server.pki.applianceCa);
  spiffeId = server.pki.applianceId(DEPLOYMENT_ID);
  held = await issuedFor(await generateKeyAndCsr({ spiffeId, commonName: DEPLOYMENT_ID }));
  const leaseToken = server.signLease();
  const jwks = parseJwks(server.jwksJson())!;
  const verdict = await checkLease(leaseToken, { jwks, issuer: ISSUER, deploymentId: DEPLOYMENT_ID, fingerprint: FINGERPRINT, highestSeq: 0, now: T0, maxClockSkewMs: 5_000 });
  if (!verdict.ok) throw new Error(verdict.message);
  base = {
    file: {
      version: STATE_FILE_VERSION,
      licenseId: "lic-0001",
      deploymentId: DEPLOYMENT_ID,
      certificatePem: held.certPem,
      privateKeyPem: held.keyPem,
      certificateChainPem: [],
      pendingPrivateKeyPem: null,
      leaseToken,
      highestLeaseSeq: verdict.claims.seq,
      jwks,
      settings: { heartbeatIntervalMs: 1_000, graceWindowMs: 60_000, maxClockSkewMs: 5_000 },
      watermark: T0,
      lockedByDirective: false,
      suspendedByDirective: false,
      revoked: false,
      pendingAcks: [],
    },
    lease: toApplianceLease(verdict.claims),
    appliedIds: [],
  };
});

async function issuedFor(key: { keyPem: string; csrPem: string }): Promise<{ keyPem: string; certPem: string }> {
  const issued = await issueCertificateFromCsr(ca, { csrPem: key.csrPem, spiffeId, validityMs: 86_400_000 });
  if (!issued.ok) throw new Error(issued.message);
  return { keyPem: key.keyPem, certPem: issued.certPem };
}

/** What the shell does: check the directive's lease (real signature), then decide. */
async function decide(state: BoxState, directive: Directive, extra: { now?: number; csrSent?: boolean } = {}): Promise<Decision> {
  const now = extra.now ?? T0;
  const lease =
    directive.leaseToken === ""
      ? undefined
      : await checkOfferedLease(directive.leaseToken, { file: state.file, holdsLease: state.lease !== null }, { issuer: ISSUER, fingerprint: FINGERPRINT, now });
  return applyDirective(state, directive, { now, leaseReplacementMs: WINDOW_MS, lease, csrSent: extra.csrSent });
}

/** The effects as short names, to compare their order. */
function kinds(effects: readonly Effect[]): string[] {
  return effects.map((e) => (e.kind === "emit" ? `emit:${e.event}:${e.event === "directive" ? e.payload.outcome : ""}` : e.kind));
}

const APPLIED = ["persist", "ack", "emit:directive:applied", "evaluate"];
const IGNORED = ["emit:directive:ignored"];

describe("state directives", () => {
  it("LOCK sets the local lock, then writes, acks, reports and re-evaluates — without touching the state it was given", async () => {
    const before = structuredClone(base);
    const d = server.directive(DirectiveType.LOCK, { reason: "licence revoked" });
    const { state, effects } = await decide(base, d);
    expect(state.file.lockedByDirective).toBe(true);
    expect(kinds(effects)).toEqual(APPLIED);
    expect(effects).toContainEqual({ kind: "ack", ids: [d.id] });
    expect(effects).toContainEqual({ kind: "emit", event: "directive", payload: { id: d.id, type: "LOCK", reason: "licence revoked", outcome: "applied" } });
    expect(state.appliedIds).toEqual([d.id]);
    expect(base).toEqual(before);
  });

  it("SUSPEND applies even with a lease it refuses; the refusal is reported first", async () => {
    const d = server.directive(DirectiveType.SUSPEND, { leaseToken: server.signLease({ st: "SUSPENDED", fingerprint: "another box" }) });
    const { state, effects } = await decide(base, d);
    expect(state.file.suspendedByDirective).toBe(true);
    expect(state.file.leaseToken).toBe(base.file.leaseToken);
    expect(kinds(effects)).toEqual(["log", "emit:lease-rejected:", ...APPLIED]);
    expect(effects[1]).toMatchObject({ payload: { code: "LEASE_WRONG_FINGERPRINT", directiveId: d.id } });
  });

  it("REACTIVATE lifts both local locks and adopts its newer lease", async () => {
    const locked: BoxState = { ...base, file: { ...base.file, lockedByDirective: true, suspendedByDirective: true } };
    const d = server.directive(DirectiveType.REACTIVATE, { leaseToken: server.signLease() });
    const { state, effects } = await decide(locked, d);
    expect(state.file).toMatchObject({ lockedByDirective: false, suspendedByDirective: false, leaseToken: d.leaseToken });
    expect(state.lease!.seq).toBeGreaterThan(base.lease!.seq);
    expect(kinds(effects)).toEqual(APPLIED);
  });
});

describe("RENEW_LEASE", () => {
  it("adopts a newer lease: seq floor, watermark raised to its iat, a SUSPEND lifted", async () => {
    const suspended: BoxState = { ...base, file: { ...base.file, suspendedByDirective: true } };
    const d = server.directive(DirectiveType.RENEW_LEASE, { leaseToken: server.signLease({ issuedAt: T0 + 10_000 }) });
    const { state, effects } = await decide(suspended, d, { now: T0 + 10_000 });
    expect(state.file.highestLeaseSeq).toBe(state.lease!.seq);
    expect(state.file.watermark).toBe(T0 + 10_000);
    expect(state.file.suspendedByDirective).toBe(false);
    expect(kinds(effects)).toEqual(APPLIED);
  });

  it("a lease not newer than the highest seen is refused: ignored, not acked, nothing written", async () => {
    const d = server.directive(DirectiveType.RENEW_LEASE, { leaseToken: server.signLease({ seq: base.file.highestLeaseSeq, issuedAt: T0 + 1_000 }) });
    const { state, effects } = await decide(base, d);
    expect(state.file.leaseToken).toBe(base.file.leaseToken);
    expect(kinds(effects)).toEqual(["log", "emit:lease-rejected:", ...IGNORED]);
    expect(effects[1]).toMatchObject({ payload: { code: "LEASE_SEQ_NOT_NEWER" } });
  });

  it("the lease already held, redelivered, is applied again without a check", async () => {
    const d = server.directive(DirectiveType.RENEW_LEASE, { leaseToken: base.file.leaseToken });
    const { state, effects } = await decide(base, d);
    expect(state.lease).toEqual(base.lease);
    expect(kinds(effects)).toEqual(APPLIED);
  });

  it("a lease of the deployment's renewed licence moves the box to it and keeps the old id", async () => {
    const d = server.directive(DirectiveType.RENEW_LEASE, { leaseToken: server.signLease({ licenseId: "lic-0002" }) });
    const { state, effects } = await decide(base, d);
    expect(state.file.licenseId).toBe("lic-0002");
    expect(state.file.previousLicenseIds).toEqual(["lic-0001"]);
    expect(effects).toContainEqual({ kind: "emit", event: "license-renewed", payload: { from: "lic-0001", to: "lic-0002" } });
  });
});

describe("REFRESH_KEYS and the lease replacement window", () => {
  let next: GeneratedSigningKey;
  beforeAll(async () => {
    next = await generateSigningKey();
  });

  it("the same key ids change nothing but are applied; a directive without id is not acked", async () => {
    const d = server.directive(DirectiveType.REFRESH_KEYS, { id: "", jwksJson: server.jwksJson() });
    const { state, effects } = await decide(base, d);
    expect(state.file.leaseReplacement).toBeUndefined();
    expect(kinds(effects)).toEqual(["persist", "emit:directive:applied", "evaluate"]);
    expect(state.appliedIds).toEqual([]);
  });

  it("a set without the lease's key opens the window: state kept, a fresh lease asked for at once", async () => {
    const d = server.directive(DirectiveType.REFRESH_KEYS, { jwksJson: server.jwksJson([next]) });
    const { state, effects } = await decide(base, d);
    expect(state.file.leaseReplacement).toMatchObject({ deadline: T0 + WINDOW_MS, key: { kid: server.signingKey.kid } });
    expect(state.lease).toEqual(base.lease);
    expect(reportedLeaseSeq(state)).toBe(0n);
    expect(kinds(effects)).toEqual(["log", "emit:lease-replacing:", "ask-lease-now", ...APPLIED, "reconnect"]);

    // A set that holds the lease's key again closes the window; any other change never stretches it.
    const again = await decide(state, server.directive(DirectiveType.REFRESH_KEYS, { jwksJson: server.jwksJson([next, server.signingKey]) }), { now: T0 + 60_000 });
    expect(again.state.file.leaseReplacement).toBeUndefined();
    const other = await decide(state, server.directive(DirectiveType.REFRESH_KEYS, { jwksJson: JSON.stringify({ keys: [] }) }), { now: T0 + 60_000 });
    expect(other.state.file.leaseReplacement!.deadline).toBe(T0 + WINDOW_MS);

    // A fresh lease by the new key ends the window; the old key's leases are refused.
    const stale = await decide(state, server.directive(DirectiveType.RENEW_LEASE, { leaseToken: server.signLease() }));
    expect(stale.effects[1]).toMatchObject({ payload: { code: "TOKEN_UNKNOWN_KEY" } });
    const fresh = await decide(state, server.directive(DirectiveType.RENEW_LEASE, { leaseToken: server.signLease({ key: next }) }));
    expect(fresh.state.file.leaseReplacement).toBeUndefined();
    expect(reportedLeaseSeq(fresh.state)).toBe(BigInt(fresh.state.lease!.seq));

    // With none by the deadline, the lease is dropped.
    expect(dropLeaseIfReplacementDue(state, T0 + WINDOW_MS - 1, WINDOW_MS)).toBeNull();
    const dropped = dropLeaseIfReplacementDue(state, T0 + WINDOW_MS, WINDOW_MS)!;
    expect(dropped.state.lease).toBeNull();
    expect(dropped.state.file.leaseReplacement).toBeUndefined();
    expect(kinds(dropped.effects)).toEqual(["log", "emit:lease-rejected:", "persist"]);
    expect(dropped.effects[1]).toMatchObject({ payload: { code: "TOKEN_UNKNOWN_KEY", seq: base.file.highestLeaseSeq } });
  });

  it("a box that already runs without a lease has nothing to replace", async () => {
    const leaseless: BoxState = { ...base, lease: null };
    const { state, effects } = await decide(leaseless, server.directive(DirectiveType.REFRESH_KEYS, { jwksJson: server.jwksJson([next]) }));
    expect(state.file.leaseReplacement).toBeUndefined();
    expect(kinds(effects)).toEqual(APPLIED);
  });

  it("an unusable JWKS is an error, ignored and not acked", async () => {
    const { state, effects } = await decide(base, server.directive(DirectiveType.REFRESH_KEYS, { jwksJson: "not json" }));
    expect(state.file.jwks).toEqual(base.file.jwks);
    expect(kinds(effects)).toEqual(["error", ...IGNORED]);
  });
});

describe("SET_INTERVAL", () => {
  it("in range: the interval changes and the beat is re-armed before the write", async () => {
    const { state, effects } = await decide(base, server.directive(DirectiveType.SET_INTERVAL, { heartbeatInterval: durationFromMs(5_000) }));
    expect(state.file.settings.heartbeatIntervalMs).toBe(5_000);
    expect(kinds(effects)).toEqual(["reschedule-beat", ...APPLIED]);
  });

  it("out of range (or missing): an error, ignored, not acked", async () => {
    for (const init of [{ heartbeatInterval: durationFromMs(10) }, {}]) {
      const { state, effects } = await decide(base, server.directive(DirectiveType.SET_INTERVAL, init));
      expect(state.file.settings).toEqual(base.file.settings);
      expect(kinds(effects)).toEqual(["error", ...IGNORED]);
    }
  });
});

describe("RENEW_CERTIFICATE", () => {
  it("without a certificate: applied once the CSR is on the stream, else left unacked", async () => {
    const d = server.directive(DirectiveType.RENEW_CERTIFICATE);
    expect(kinds((await decide(base, d, { csrSent: true })).effects)).toEqual(APPLIED);
    expect(kinds((await decide(base, d, { csrSent: false })).effects)).toEqual(IGNORED);
  });

  it("for the held key: adopted, and the box reconnects with it", async () => {
    const own = await decide(base, server.directive(DirectiveType.RENEW_CERTIFICATE, { certificatePem: base.file.certificatePem, certificateChainPem: ["chain"] }));
    expect(own.state.file.certificateChainPem).toEqual(["chain"]);
    expect(kinds(own.effects)).toEqual(["certificate-adopted", ...APPLIED, "reconnect"]);
  });

  it("for the key of the pending CSR: adopted, and that key becomes the box's key", async () => {
    const pending = await issuedFor(await generateKeyAndCsr({ spiffeId, commonName: DEPLOYMENT_ID }));
    const waiting: BoxState = { ...base, file: { ...base.file, pendingPrivateKeyPem: pending.keyPem } };
    const { state, effects } = await decide(waiting, server.directive(DirectiveType.RENEW_CERTIFICATE, { certificatePem: pending.certPem }));
    expect(state.file).toMatchObject({ certificatePem: pending.certPem, privateKeyPem: pending.keyPem, pendingPrivateKeyPem: null });
    expect(kinds(effects)).toEqual(["certificate-adopted", ...APPLIED, "reconnect"]);
  });

  it("for a key the box does not hold, expired or unparsable: discarded — acked, remembered, nothing adopted", async () => {
    const stranger = await issuedFor(await generateKeyAndCsr({ spiffeId, commonName: DEPLOYMENT_ID }));
    const cases: Array<{ pem: string; now?: number }> = [{ pem: stranger.certPem }, { pem: "garbage" }, { pem: held.certPem, now: T0 + 2 * 86_400_000 }];
    for (const { pem, now } of cases) {
      const d = server.directive(DirectiveType.RENEW_CERTIFICATE, { certificatePem: pem });
      const { state, effects } = await decide(base, d, now === undefined ? {} : { now });
      expect(state.file.certificatePem).toBe(base.file.certificatePem);
      expect(kinds(effects)).toEqual(["error", "ack", "emit:directive:discarded"]);
      expect(state.appliedIds).toEqual([d.id]);
      // Redelivered (the ack was lost): acked again as a duplicate, not judged again.
      expect(kinds((await decide(state, d)).effects)).toEqual(["ack", "emit:directive:duplicate"]);
    }
  });
});

describe("any directive", () => {
  it("an unknown type is an error, ignored and not acked; its lease is still adopted and written", async () => {
    const d = server.directive(99 as DirectiveType, { leaseToken: server.signLease() });
    const { state, effects } = await decide(base, d);
    expect(state.lease!.seq).toBeGreaterThan(base.lease!.seq);
    expect(kinds(effects)).toEqual(["error", "persist", ...IGNORED]);
    expect(effects[2]).toMatchObject({ payload: { type: "UNSPECIFIED" } });
  });

  it("a redelivery of an applied directive is acked and reported as duplicate, the state unchanged", async () => {
    const d = server.directive(DirectiveType.LOCK);
    const first = await decide(base, d);
    const again = await decide(first.state, d);
    expect(again.state).toBe(first.state);
    expect(kinds(again.effects)).toEqual(["ack", "emit:directive:duplicate"]);
  });

  it("remembers the last 64 applied ids only", async () => {
    let state = base;
    for (let i = 0; i < 70; i += 1) state = (await decide(state, server.directive(DirectiveType.LOCK))).state;
    expect(state.appliedIds).toHaveLength(64);
  });

  it("refuses to decide on a lease nobody verified", () => {
    const d = server.directive(DirectiveType.RENEW_LEASE, { leaseToken: server.signLease() });
    expect(() => applyDirective(base, d, { now: T0, leaseReplacementMs: WINDOW_MS })).toThrow(/not verified/);
  });
});
