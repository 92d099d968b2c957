/**
 * Reading the control plane's answers on the box: the runtime settings of an Activate, a
 * directive's type as a string, the domain code of a refusal, and whether a certificate is for a
 * key the box holds.
 */
import { X509Certificate, createPrivateKey } from "node:crypto";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { ConnectError } from "@connectrpc/connect";
import { DEFAULT_SETTINGS, HEARTBEAT_INTERVAL_RANGE_MS } from "@lcp/domain";
import { ErrorInfoSchema } from "@lcp/proto/google/rpc/error_details_pb";
import type { ActivateResponse } from "@lcp/proto/licensing/v1/appliance_service_pb";
import { DirectiveType } from "@lcp/proto/licensing/v1/types_pb";
import type { ApplianceRuntimeSettings } from "./state-file.js";

/** The directive types, as strings. */
export type DirectiveKind = "LOCK" | "SUSPEND" | "REACTIVATE" | "RENEW_LEASE" | "RENEW_CERTIFICATE" | "REFRESH_KEYS" | "SET_INTERVAL" | "UNSPECIFIED";

/** The runtime settings an Activate carries, with the defaults for what is missing or unusable. */
export function settingsFrom(s: ActivateResponse["settings"]): ApplianceRuntimeSettings {
  const ms = (d: Parameters<typeof durationMs>[0] | undefined, fallback: number) => {
    const v = d ? durationMs(d) : NaN;
    return Number.isFinite(v) && v >= 0 ? v : fallback;
  };
  return {
    heartbeatIntervalMs: Math.max(HEARTBEAT_INTERVAL_RANGE_MS.min, ms(s?.heartbeatInterval, DEFAULT_SETTINGS.heartbeatIntervalMs)),
    graceWindowMs: ms(s?.graceWindow, DEFAULT_SETTINGS.graceWindowMs),
    maxClockSkewMs: ms(s?.maxClockSkew, DEFAULT_SETTINGS.maxClockSkewMs),
  };
}

/** Whether `cert` is for the private key `keyPem`. */
export function certificateMatchesKey(cert: string | X509Certificate, keyPem: string): boolean {
  try {
    const x = typeof cert === "string" ? new X509Certificate(cert) : cert;
    return x.checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false;
  }
}

/** A directive type as its string name. */
export function directiveKind(type: DirectiveType): DirectiveKind {
  const name = DirectiveType[type] as string | undefined;
  return (name ?? "UNSPECIFIED") as DirectiveKind;
}

/** The ErrorInfo reason (domain code) of a Connect error, if it carries one. */
export function errorReason(error: unknown): string | undefined {
  if (!(error instanceof ConnectError)) return undefined;
  try {
    return error.findDetails(ErrorInfoSchema)[0]?.reason;
  } catch {
    return undefined;
  }
}
