/**
 * The fleet-wide directives as values: REFRESH_KEYS with the current JWKS, SET_INTERVAL with the
 * interval setting, and the key-set comparisons that decide when a box needs the former. Used by
 * the broadcast (fleet-sync.ts) and by the hello and unary beat (session.ts), so a connected box
 * and a reconnecting one are told the same thing.
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { DirectiveSchema, DirectiveType, type Directive } from "@lcp/proto/licensing/v1/types_pb";
import { decodeProtectedHeader } from "jose";
import type { JwksSnapshot } from "../signing-keys.js";

/** Key ids a box may report (a JWKS holds a handful); more is a malformed hello, not a key set. */
export const MAX_REPORTED_KEY_IDS = 64;

/**
 * REFRESH_KEYS with `jwks`. No id: it is a statement of the current set, not a stored directive
 * (fleet-broadcast.ts), so the box's ack of it costs nothing.
 */
export function refreshKeysDirective(jwks: JwksSnapshot, now: Date): Directive {
  return create(DirectiveSchema, {
    type: DirectiveType.REFRESH_KEYS,
    reason: "the signing key set changed",
    issueTime: timestampFromMs(now.getTime()),
    jwksJson: jwks.json,
  });
}

/** SET_INTERVAL with the heartbeat interval setting (no id, as {@link refreshKeysDirective}). */
export function setIntervalDirective(heartbeatIntervalMs: number, now: Date): Directive {
  return create(DirectiveSchema, {
    type: DirectiveType.SET_INTERVAL,
    reason: "the heartbeat interval setting changed",
    issueTime: timestampFromMs(now.getTime()),
    heartbeatInterval: durationFromMs(heartbeatIntervalMs),
  });
}

/** Whether the key ids a box reported are exactly the current set (order and repeats ignored). */
export function sameKeySet(current: ReadonlySet<string>, reported: readonly string[]): boolean {
  const seen = new Set(reported);
  if (seen.size !== current.size) return false;
  for (const kid of seen) if (!current.has(kid)) return false;
  return true;
}

/** Whether two key sets are equal. */
export function keySetsEqual(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  return sameKeySet(a, [...b]);
}

/** Whether `token` names (in its header) a key of `kids`; false for anything unreadable. */
export function signedByKeyIn(token: string, kids: ReadonlySet<string>): boolean {
  try {
    const kid = decodeProtectedHeader(token).kid;
    return typeof kid === "string" && kids.has(kid);
  } catch {
    return false;
  }
}
