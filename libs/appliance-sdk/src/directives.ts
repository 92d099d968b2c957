/**
 * The pure core of the appliance: what a directive does to the box's state, and what the shell
 * (appliance.ts) must then do about it — write the state file, ack, emit, re-evaluate, reconnect.
 * No I/O happens here: the two answers that need it (the verdict on a lease the directive carries,
 * and whether a CSR got onto the stream) are computed by the shell first and passed in, so every
 * directive type is decided, and tested, without a server.
 *
 * A directive comes over TLS from the control plane (its certificate chains to the pinned CA), but
 * a lease it carries is believed only if its signature, typ, issuer, licence, deployment,
 * fingerprint and seq all check out (lease.ts).
 */
import { X509Certificate } from "node:crypto";
import { durationMs } from "@bufbuild/protobuf/wkt";
import type { JSONWebKeySet } from "jose";
import { HEARTBEAT_INTERVAL_RANGE_MS, type ApplianceLease } from "@lcp/domain";
import { DirectiveType, type Directive } from "@lcp/proto/licensing/v1/types_pb";
import type { ApplianceEvents, DirectiveEvent, LeaseRejectedEvent, LeaseReplacingEvent, LicenseRenewedEvent } from "./api.js";
import type { TypedEmitter } from "./emitter.js";
import { adoptKeySet, parseJwks, replacementExpired } from "./key-set.js";
import { toApplianceLease, type OfferedLease } from "./lease.js";
import { certificateMatchesKey, directiveKind } from "./messages.js";
import type { ApplianceStateFile } from "./state-file.js";

// How many applied directive ids are remembered, so a redelivery is acked, not re-applied.
const REMEMBERED_DIRECTIVES = 64;
// How many superseded licence ids the state file keeps (each still names it on load).
const MAX_PREVIOUS_LICENSES = 16;

/** What the box decides with: its state file, the lease it trusts, the directives it applied lately. */
export interface BoxState {
  readonly file: ApplianceStateFile;
  /** The verified lease, or null when the box runs without one. */
  readonly lease: ApplianceLease | null;
  /** Ids of the last applied directives, oldest first (not persisted: the server redelivers on loss). */
  readonly appliedIds: readonly string[];
}

/** An event for the shell to emit, with its payload. */
export type EmittedEvent =
  | { readonly event: "directive"; readonly payload: DirectiveEvent }
  | { readonly event: "lease-rejected"; readonly payload: LeaseRejectedEvent }
  | { readonly event: "lease-replacing"; readonly payload: LeaseReplacingEvent }
  | { readonly event: "license-renewed"; readonly payload: LicenseRenewedEvent };

/** Something the shell does after adopting the new state, in list order. */
export type Effect =
  /** Write the state file (awaited before what follows, so an ack never precedes the write). */
  | { readonly kind: "persist" }
  /** Acknowledge these directive ids to the server. */
  | { readonly kind: "ack"; readonly ids: readonly string[] }
  | ({ readonly kind: "emit" } & EmittedEvent)
  | { readonly kind: "log"; readonly level: "info" | "warn"; readonly obj: object; readonly msg: string }
  /** A background error: logged and emitted as "error"; the box carries on. */
  | { readonly kind: "error"; readonly message: string }
  /** The heartbeat interval changed: re-arm the beat and the silence watchdog. */
  | { readonly kind: "reschedule-beat" }
  /** A fresh lease is needed: a unary box beats again at once (a streaming one reconnects). */
  | { readonly kind: "ask-lease-now" }
  /** A renewed certificate was adopted: the next renewal may be asked for at once when due. */
  | { readonly kind: "certificate-adopted" }
  /** Re-evaluate the box's state (and emit "state" on a change). */
  | { readonly kind: "evaluate" }
  /** End the stream once its queued messages are taken and reconnect at once. */
  | { readonly kind: "reconnect" };

/** A new state and what to do about it. */
export interface Decision {
  readonly state: BoxState;
  readonly effects: readonly Effect[];
}

/** What {@link applyDirective} decides with, besides the state and the directive. */
export interface DirectiveInputs {
  /** The box's clock, epoch ms. */
  readonly now: number;
  /** The lease replacement window (key-set.ts). */
  readonly leaseReplacementMs: number;
  /** The verdict on the directive's lease token (`checkOfferedLease`); required when it carries one. */
  readonly lease?: OfferedLease | undefined;
  /** For a RENEW_CERTIFICATE without a certificate: whether the shell got a CSR onto the stream. */
  readonly csrSent?: boolean | undefined;
}

/** Emits an event a decision asks for. */
export function emitEvent(events: TypedEmitter<ApplianceEvents>, emitted: EmittedEvent): void {
  switch (emitted.event) {
    case "directive":
      return events.emit("directive", emitted.payload);
    case "lease-rejected":
      return events.emit("lease-rejected", emitted.payload);
    case "lease-replacing":
      return events.emit("lease-replacing", emitted.payload);
    case "license-renewed":
      return events.emit("license-renewed", emitted.payload);
  }
}

/** Whether `directive` was applied already (a redelivery: acked again, not re-applied). */
export function isDuplicate(state: BoxState, directive: Directive): boolean {
  return directive.id !== "" && state.appliedIds.includes(directive.id);
}

/** Whether the directive is an operator's request for a certificate renewal (the box must send a CSR). */
export function asksForCsr(directive: Directive): boolean {
  return directive.type === DirectiveType.RENEW_CERTIFICATE && directive.certificatePem === "";
}

/**
 * Applies one directive: the new state, and the effects — an applied directive is written, then
 * acked, then reported; one that can never apply is acked and discarded; one not applied is left
 * unacked (the server redelivers it on reconnect). `state` is not modified.
 */
export function applyDirective(state: BoxState, directive: Directive, inputs: DirectiveInputs): Decision {
  const type = directiveKind(directive.type);
  const report = (outcome: DirectiveEvent["outcome"]): Effect => ({
    kind: "emit",
    event: "directive",
    payload: { id: directive.id, type, reason: directive.reason, outcome },
  });
  if (isDuplicate(state, directive)) return { state, effects: [{ kind: "ack", ids: [directive.id] }, report("duplicate")] };

  const file = structuredClone(state.file);
  let lease = state.lease;
  const effects: Effect[] = [];
  const error = (message: string) => effects.push({ kind: "error", message: `directive ${directive.id}: ${message}` });
  let applied = false;
  let discarded = false;
  let reconnect = false;
  let leaseOk: boolean | null = null;
  if (directive.leaseToken !== "") {
    if (inputs.lease === undefined) throw new Error(`directive ${directive.id}: its lease was not verified`);
    const adopted = adoptLease(file, directive.leaseToken, inputs.lease, directive.id, effects);
    leaseOk = adopted !== null;
    if (adopted && adopted !== "held") lease = adopted;
  }

  switch (directive.type) {
    case DirectiveType.LOCK:
      file.lockedByDirective = true;
      applied = true;
      break;
    case DirectiveType.SUSPEND:
      // Suspending is the safe direction, so it applies even if an attached lease was refused.
      file.suspendedByDirective = true;
      applied = true;
      break;
    case DirectiveType.REACTIVATE:
      // Lifts the local locks only; a SUSPENDED lease still holds until a newer lease replaces
      // it, so an unsigned message alone can never turn a suspended box back on.
      file.lockedByDirective = false;
      file.suspendedByDirective = false;
      applied = true;
      break;
    case DirectiveType.RENEW_LEASE:
      applied = leaseOk === true;
      break;
    case DirectiveType.REFRESH_KEYS: {
      const jwks = parseJwks(directive.jwksJson);
      if (jwks) {
        reconnect = adoptKeys(file, jwks, lease !== null, inputs, effects);
        applied = true;
      } else error("REFRESH_KEYS without a usable JWKS; ignored");
      break;
    }
    case DirectiveType.SET_INTERVAL: {
      const ms = directive.heartbeatInterval ? durationMs(directive.heartbeatInterval) : NaN;
      const range = HEARTBEAT_INTERVAL_RANGE_MS;
      if (Number.isFinite(ms) && ms >= range.min && ms <= range.max) {
        file.settings = { ...file.settings, heartbeatIntervalMs: ms };
        effects.push({ kind: "reschedule-beat" });
        applied = true;
      } else error("SET_INTERVAL out of range; ignored");
      break;
    }
    case DirectiveType.RENEW_CERTIFICATE:
      if (directive.certificatePem === "") {
        // An operator's request: the server cannot issue without our CSR, so renew as on expiry.
        // Acked once the CSR is on the stream, not when the certificate comes: the certificate
        // arrives as its own RENEW_CERTIFICATE (stored and redelivered by the server until acked,
        // its key kept in the state file), so this directive's part is done, and holding its ack
        // across reconnects would redeliver it and ask for yet another certificate each time.
        applied = inputs.csrSent === true;
      } else {
        const verdict = acceptCertificate(file, directive, inputs.now);
        if (verdict === "adopted") effects.push({ kind: "certificate-adopted" });
        else error(`${verdict}; discarded`);
        applied = verdict === "adopted";
        discarded = !applied;
        reconnect = applied;
      }
      break;
    default:
      error(`unknown type ${directive.type}; ignored`);
  }

  let appliedIds = state.appliedIds;
  if (applied) {
    appliedIds = remember(appliedIds, directive.id);
    effects.push({ kind: "persist" });
    // A directive without an id is a statement of the current truth (the key set, the interval),
    // stored nowhere: there is nothing to acknowledge.
    if (directive.id !== "") effects.push({ kind: "ack", ids: [directive.id] });
    effects.push(report("applied"), { kind: "evaluate" });
    if (reconnect) effects.push({ kind: "reconnect" });
  } else if (discarded) {
    appliedIds = remember(appliedIds, directive.id);
    effects.push({ kind: "ack", ids: [directive.id] }, report("discarded"));
  } else {
    if (leaseOk === true) effects.push({ kind: "persist" });
    effects.push(report("ignored"));
  }
  return { state: { file, lease, appliedIds }, effects };
}

/**
 * The lease replacement window closed with no fresh lease: the lease is dropped (LOCKED,
 * NO_LEASE). Null while there is nothing to drop.
 */
export function dropLeaseIfReplacementDue(state: BoxState, now: number, leaseReplacementMs: number): Decision | null {
  if (!replacementExpired(state.file, now)) return null;
  const file = structuredClone(state.file);
  delete file.leaseReplacement;
  const message = `no fresh lease came within ${leaseReplacementMs} ms of its signing key leaving the key set; running without a lease`;
  return {
    state: { ...state, file, lease: null },
    effects: [
      { kind: "log", level: "warn", obj: { seq: file.highestLeaseSeq }, msg: message },
      { kind: "emit", event: "lease-rejected", payload: { code: "TOKEN_UNKNOWN_KEY", message, seq: file.highestLeaseSeq } },
      { kind: "persist" },
    ],
  };
}

/** The seq the box reports holding: 0 without a lease it trusts (or one being replaced), so the server signs a fresh one. */
export function reportedLeaseSeq(state: BoxState): bigint {
  return state.lease === null || state.file.leaseReplacement ? 0n : BigInt(state.file.highestLeaseSeq);
}

/** Adopts a verified lease into `file`; null (with the rejection reported) when it was refused. */
function adoptLease(file: ApplianceStateFile, token: string, offered: OfferedLease, directiveId: string, effects: Effect[]): ApplianceLease | "held" | null {
  if (offered === "held") return "held";
  if (!offered.ok) {
    effects.push(
      { kind: "log", level: "warn", obj: { code: offered.code, seq: offered.seq, directiveId }, msg: "lease rejected" },
      {
        kind: "emit",
        event: "lease-rejected",
        payload: {
          code: offered.code,
          message: offered.message,
          ...(offered.seq === undefined ? {} : { seq: offered.seq }),
          ...(directiveId ? { directiveId } : {}),
        },
      },
    );
    return null;
  }
  const lease = toApplianceLease(offered.claims);
  if (offered.claims.sub !== file.licenseId) followRenewedLicense(file, offered.claims.sub, effects);
  file.leaseToken = token;
  file.highestLeaseSeq = lease.seq;
  delete file.leaseReplacement;
  // A newer signed lease is the control plane's current word on ACTIVE vs SUSPENDED.
  file.suspendedByDirective = false;
  file.watermark = Math.max(file.watermark, lease.iat);
  return lease;
}

/** The deployment's licence was renewed (superseded): run under the new one from now on. */
export function followRenewedLicense(file: ApplianceStateFile, licenseId: string, effects: Effect[]): void {
  const from = file.licenseId;
  file.previousLicenseIds = [...(file.previousLicenseIds ?? []).filter((id) => id !== licenseId), from].slice(-MAX_PREVIOUS_LICENSES);
  file.licenseId = licenseId;
  effects.push(
    { kind: "log", level: "info", obj: { from, to: licenseId }, msg: "the deployment's licence was renewed; running under the new licence" },
    { kind: "emit", event: "license-renewed", payload: { from, to: licenseId } },
  );
}

/**
 * Adopts a new key set (key-set.ts). Returns true when the lease was signed by a key the set no
 * longer holds: the box keeps its state on it for the replacement window and must reconnect at
 * once to be given a fresh one.
 */
function adoptKeys(file: ApplianceStateFile, jwks: JSONWebKeySet, holdsLease: boolean, inputs: DirectiveInputs, effects: Effect[]): boolean {
  if (adoptKeySet(file, jwks, holdsLease, inputs.now, inputs.leaseReplacementMs) !== "replacing") return false;
  const { deadline, key } = file.leaseReplacement!;
  const message = "the lease was signed by a key no longer in the control plane's key set; running on it while a fresh lease is asked for";
  effects.push(
    { kind: "log", level: "warn", obj: { seq: file.highestLeaseSeq, kid: key.kid, deadline }, msg: message },
    { kind: "emit", event: "lease-replacing", payload: { ...(key.kid === undefined ? {} : { keyId: key.kid }), deadline, message } },
    { kind: "ask-lease-now" },
  );
  return true;
}

/**
 * Adopts a renewed certificate if it is for our current key or the key of our pending CSR, else
 * says why it can never be adopted (unparsable, expired, or for a key the box does not hold — each
 * renewal replaces the pending key, so a late answer to an older CSR matches nothing): left
 * unacked it would be redelivered on every reconnect for ever. If the box still needs a
 * certificate, its own renewal check asks again.
 */
function acceptCertificate(file: ApplianceStateFile, directive: Directive, now: number): "adopted" | string {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(directive.certificatePem);
  } catch {
    return "RENEW_CERTIFICATE without a parsable certificate";
  }
  if (Date.parse(cert.validTo) <= now) return "renewed certificate already expired";
  const key = [file.pendingPrivateKeyPem, file.privateKeyPem].find((k) => k !== null && certificateMatchesKey(cert, k));
  if (!key) return "renewed certificate is not for a key this box holds";
  file.certificatePem = directive.certificatePem;
  file.certificateChainPem = [...directive.certificateChainPem];
  if (key === file.pendingPrivateKeyPem) file.pendingPrivateKeyPem = null;
  file.privateKeyPem = key;
  return "adopted";
}

function remember(ids: readonly string[], id: string): readonly string[] {
  if (id === "") return ids;
  return [...ids, id].slice(-REMEMBERED_DIRECTIVES);
}
