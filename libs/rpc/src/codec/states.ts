/**
 * Domain values ↔ `licensing.v1` enums: one typed table each, shared by every app that puts a
 * deployment's state, lock reason or a directive type on the wire (licensing's messages,
 * fleet-sweep's reports). Keyed by the domain's unions, so a state or reason the domain gains
 * without its enum value does not compile. It lives in `libs/rpc` because that is the one library
 * both apps use that may import the generated protos and `@lcp/domain` alike (`libs/domain` is
 * pure and imports nothing; `libs/proto` is generated output only).
 */
import type { DeploymentState as DomainState, LockReason as DomainLockReason, StateDirective } from "@lcp/domain";
import { DeploymentState, DirectiveType, LockReason } from "@lcp/proto/licensing/v1/types_pb";

/** A directive type by name (the proto enum's member name, as directive rows store it). */
export type DirectiveTypeName = Exclude<keyof typeof DirectiveType, "UNSPECIFIED" | number>;

/** Each domain state's `licensing.v1.DeploymentState`. */
export const DEPLOYMENT_STATE_ENUM: Readonly<Record<DomainState, DeploymentState>> = {
  PENDING: DeploymentState.PENDING,
  ACTIVE: DeploymentState.ACTIVE,
  GRACE: DeploymentState.GRACE,
  SUSPENDED: DeploymentState.SUSPENDED,
  LOCKED: DeploymentState.LOCKED,
};

/** Each lock reason's `licensing.v1.LockReason`. */
export const LOCK_REASON_ENUM: Readonly<Record<DomainLockReason, LockReason>> = {
  REVOKED: LockReason.REVOKED,
  EXPIRED: LockReason.EXPIRED,
  OFFLINE: LockReason.OFFLINE,
};

/** Each directive type's `licensing.v1.DirectiveType`. */
export const DIRECTIVE_TYPE_ENUM: Readonly<Record<DirectiveTypeName, DirectiveType>> = {
  LOCK: DirectiveType.LOCK,
  SUSPEND: DirectiveType.SUSPEND,
  REACTIVATE: DirectiveType.REACTIVATE,
  RENEW_LEASE: DirectiveType.RENEW_LEASE,
  REFRESH_KEYS: DirectiveType.REFRESH_KEYS,
  SET_INTERVAL: DirectiveType.SET_INTERVAL,
  RENEW_CERTIFICATE: DirectiveType.RENEW_CERTIFICATE,
};

// Every directive the domain orders on a state change has a wire type (a compile-time check).
const _stateDirectivesOnTheWire: Readonly<Record<StateDirective, DirectiveType>> = DIRECTIVE_TYPE_ENUM;
void _stateDirectivesOnTheWire;

/** The reverse of a table: enum number → domain name; UNSPECIFIED and unknown numbers are absent. */
function reverse<K extends string, V extends number>(table: Readonly<Record<K, V>>): ReadonlyMap<number, K> {
  return new Map(Object.entries(table).map(([k, v]) => [v as number, k as K]));
}
const STATE_NAMES = reverse(DEPLOYMENT_STATE_ENUM);
const LOCK_REASON_NAMES = reverse(LOCK_REASON_ENUM);
const DIRECTIVE_TYPE_NAMES = reverse(DIRECTIVE_TYPE_ENUM);

/** The proto enum of a domain state. */
export function stateToProto(state: DomainState): DeploymentState {
  return DEPLOYMENT_STATE_ENUM[state];
}
/** The domain state of a proto enum value; undefined for UNSPECIFIED and unknown numbers. */
export function stateFromProto(value: number): DomainState | undefined {
  return STATE_NAMES.get(value);
}
/** The proto enum of a lock reason (UNSPECIFIED when not locked). */
export function lockReasonToProto(reason: DomainLockReason | null): LockReason {
  return reason === null ? LockReason.UNSPECIFIED : LOCK_REASON_ENUM[reason];
}
/** The lock reason of a proto enum value; undefined for UNSPECIFIED and unknown numbers. */
export function lockReasonFromProto(value: number): DomainLockReason | undefined {
  return LOCK_REASON_NAMES.get(value);
}
/** The proto enum of a stored directive type; UNSPECIFIED for a name that is not one (a damaged row). */
export function directiveTypeToProto(name: string): DirectiveType {
  return Object.hasOwn(DIRECTIVE_TYPE_ENUM, name) ? DIRECTIVE_TYPE_ENUM[name as DirectiveTypeName] : DirectiveType.UNSPECIFIED;
}
/** The directive type name of a proto enum value; undefined for UNSPECIFIED and unknown numbers. */
export function directiveTypeFromProto(value: number): DirectiveTypeName | undefined {
  return DIRECTIVE_TYPE_NAMES.get(value);
}
