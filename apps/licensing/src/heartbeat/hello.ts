/**
 * A box's hello (and the identity fields of a unary beat): its shape, the checks against the
 * facts — licence of the certificate's deployment, then the heartbeat verdict — and what it is
 * told on arrival: its pending directives and the current key set.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { heartbeat, heartbeatRefusalLocksBox, type DomainCode } from "@lcp/domain";
import type { Hello } from "@lcp/proto/licensing/v1/appliance_service_pb";
import { DirectiveSchema, DirectiveType, type Directive } from "@lcp/proto/licensing/v1/types_pb";
import { assertOwnDeployment, DomainError, type AppliancePrincipal } from "@lcp/rpc";
import { decodeJwt } from "jose";
import { v7 as uuidv7 } from "uuid";
import type { Loaded } from "../core/deployment-change.js";
import { directiveToProto } from "../mapping.js";
import { invalid, requireFingerprintHash, requireId } from "../validation.js";
import type { LicenseRow } from "../storage/entities.js";
import { factsOf } from "../storage/repository.js";
import { MAX_AGENT_VERSION_LENGTH } from "../appliance-service/validate.js";
import type { HeartbeatContext } from "./context.js";
import { ackDirectives } from "./directive-store.js";
import { MAX_REPORTED_KEY_IDS, refreshKeysDirective, sameKeySet, signedByKeyIn } from "./key-set.js";

/** A validated hello. */
export interface HelloInput {
  licenseId: string;
  fingerprintHash: string;
  lastLeaseSeq: number;
  agentVersion: string;
  /** The key ids of the box's JWKS (empty from boxes that do not report them). */
  keyIds: readonly string[];
}

/** Validates a hello's fields (shapes only). */
export function validateHello(hello: Pick<Hello, "licenseId" | "fingerprint" | "lastLeaseSeq" | "agentVersion" | "keyIds">, prefix = ""): HelloInput {
  const licenseId = requireId(hello.licenseId, `${prefix}license_id`);
  const fingerprintHash = requireFingerprintHash(hello.fingerprint, `${prefix}fingerprint`);
  const agentVersion = hello.agentVersion.trim();
  if (agentVersion.length > MAX_AGENT_VERSION_LENGTH) {
    throw invalid(`${prefix}agent_version`, `agent_version must be at most ${MAX_AGENT_VERSION_LENGTH} characters`);
  }
  if (hello.lastLeaseSeq < 0n) throw invalid(`${prefix}last_lease_seq`, "last_lease_seq must not be negative");
  const lastLeaseSeq = hello.lastLeaseSeq > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(hello.lastLeaseSeq);
  if (hello.keyIds.length > MAX_REPORTED_KEY_IDS || hello.keyIds.some((k) => k.length > 256)) {
    throw invalid(`${prefix}key_ids`, `key_ids must be at most ${MAX_REPORTED_KEY_IDS} ids of at most 256 characters`);
  }
  return { licenseId, fingerprintHash, lastLeaseSeq, agentVersion, keyIds: hello.keyIds };
}

/** A LOCK told to a box that is not to run, written nowhere (it may be the wrong box: the rows belong to the right one). */
export function ephemeralLock(reason: string, now: Date): Directive {
  return create(DirectiveSchema, { id: uuidv7(), type: DirectiveType.LOCK, reason, issueTime: timestampFromMs(now.getTime()) });
}

/** The lease seq a directive carries, if it carries one of ours (read without verifying: it came from our own table). */
function leaseSeqOf(directive: Directive): number | null {
  if (directive.leaseToken === "") return null;
  try {
    const seq = decodeJwt(directive.leaseToken)["seq"];
    return typeof seq === "number" ? seq : null;
  } catch {
    return null;
  }
}

/**
 * `loadForDecision` for a hello, with fewer reads (10,000 boxes reconnect at once after a
 * restart): the hello's licence is usually the current one, so it is not read twice, and the
 * settings are the hub's cached copy, which is what every beat judges with anyway.
 */
async function loadForOpen(ctx: HeartbeatContext, license: LicenseRow): Promise<Loaded> {
  const { reads } = ctx;
  const deployment = await reads.deployment(license.deploymentId);
  if (!deployment) throw new DomainError("NOT_FOUND", `deployment ${license.deploymentId} does not exist`, { deploymentId: license.deploymentId });
  const current = deployment.licenseId === license.id ? license : deployment.licenseId ? await reads.license(deployment.licenseId) : null;
  return { deployment, license: current, facts: factsOf(deployment), settings: ctx.hub.settings(), now: ctx.deps.now() };
}

/**
 * Checks a hello (or a unary beat's identity fields) against the facts: licence of the
 * certificate's deployment, then the heartbeat verdict. Returns the refusal instead of throwing
 * when it means the box must lock, so the caller can push LOCK first.
 */
export async function open(
  ctx: HeartbeatContext,
  principal: AppliancePrincipal,
  input: HelloInput,
): Promise<{ ok: true; loaded: Loaded } | { ok: false; code: DomainCode; message: string }> {
  const license = await ctx.reads.license(input.licenseId);
  if (!license) throw new DomainError("NOT_FOUND", `licence ${input.licenseId} does not exist`, { licenseId: input.licenseId });
  // The certificate names the deployment; a box may only speak for its own.
  assertOwnDeployment(principal, license.deploymentId);
  const loaded = await loadForOpen(ctx, license);
  // A licence superseded by a renewal keeps the binding, so the box carries on under the current
  // licence; a revoked one (current or not) is the operator's word.
  if (license.revokedAt) return { ok: false, code: "LICENSE_REVOKED", message: "the licence has been revoked" };
  const verdict = heartbeat(loaded.facts, input.fingerprintHash, loaded.now.getTime());
  if (!verdict.ok) {
    if (heartbeatRefusalLocksBox(verdict.code)) return { ok: false, code: verdict.code, message: verdict.message };
    throw new DomainError(verdict.code, verdict.message);
  }
  return { ok: true, loaded };
}

/**
 * What a box is told at hello (or a unary beat) besides its pending directives: the current key
 * set when its own differs — how a box that was offline when a key was revoked drops it — and
 * whether a pending directive carries a lease it can still verify (one signed by a key since
 * revoked does not count: the box is then given a fresh lease).
 */
export function keySync(ctx: HeartbeatContext, input: HelloInput, pending: readonly Directive[]): { refresh: Directive[]; carriesLease: boolean } {
  // The gateway's last fetch, without I/O (the fleet sync keeps it within JWKS_MAX_AGE): a hello
  // storm never waits on signing-keys, and a hello before the first fetch is simply not compared.
  const jwks = ctx.deps.signing.lastJwks();
  const refresh = jwks && !sameKeySet(jwks.kids, input.keyIds) ? [refreshKeysDirective(jwks, ctx.deps.now())] : [];
  const carriesLease = pending.some((d) => d.leaseToken !== "" && (!jwks || signedByKeyIn(d.leaseToken, jwks.kids)));
  return { refresh, carriesLease };
}

/** Loads the directives to redeliver; RENEW_LEASE rows whose lease the box already holds are acked instead. */
export async function pendingFor(ctx: HeartbeatContext, deploymentId: string, since: Date | null, boxSeq: number): Promise<Directive[]> {
  const { deps } = ctx;
  const rows = await ctx.reads.pending(deploymentId, since);
  const directives = rows.map(directiveToProto);
  const stale = directives.filter((d) => d.type === DirectiveType.RENEW_LEASE && (leaseSeqOf(d) ?? Infinity) <= boxSeq).map((d) => d.id);
  if (stale.length > 0) await ackDirectives(deps.db.em(), deploymentId, stale, deps.now());
  return directives.filter((d) => !stale.includes(d.id));
}
