/**
 * The box's verdict on itself, from what it holds: the lease (as a SUSPEND directive overrides
 * it), the local locks, the time watermark and whether it is in touch with the control plane.
 * Pure; the shell (appliance.ts) decides when to evaluate and writes the watermark.
 */
import { DEFAULT_SETTINGS, evaluateApplianceState, type ApplianceLease } from "@lcp/domain";
import type { ApplianceStateView } from "./api.js";
import type { ApplianceRuntimeSettings, ApplianceStateFile } from "./state-file.js";

/** The settings the box runs on: its state file's, or the defaults before activation. */
export function runtimeSettings(file: ApplianceStateFile | null): ApplianceRuntimeSettings {
  return (
    file?.settings ?? {
      heartbeatIntervalMs: DEFAULT_SETTINGS.heartbeatIntervalMs,
      graceWindowMs: DEFAULT_SETTINGS.graceWindowMs,
      maxClockSkewMs: DEFAULT_SETTINGS.maxClockSkewMs,
    }
  );
}

/**
 * Whether a box without a healthy stream still counts as connected: a unary box (or one that just
 * activated) does while its last successful call is within two intervals. A streaming box is
 * connected exactly while its stream is healthy.
 */
export function recentlyContacted(lastContactAt: number | null, now: number, settings: ApplianceRuntimeSettings): boolean {
  return lastContactAt !== null && now - lastContactAt <= 2 * settings.heartbeatIntervalMs;
}

/** The state now, and the watermark it raised to (never below the stored one). */
export function evaluateBox(
  file: ApplianceStateFile | null,
  held: ApplianceLease | null,
  now: number,
  connected: boolean,
): { view: ApplianceStateView; watermark: number } {
  const lease = held && file?.suspendedByDirective ? { ...held, st: "SUSPENDED" as const } : held;
  const result = evaluateApplianceState({
    lease,
    lockedByDirective: file?.lockedByDirective ?? false,
    revoked: file?.revoked ?? false,
    now,
    watermark: file?.watermark ?? 0,
    connected,
    maxClockSkewMs: runtimeSettings(file).maxClockSkewMs,
  });
  const view: ApplianceStateView = result.reason === undefined ? { state: result.state } : { state: result.state, reason: result.reason };
  return { view, watermark: result.watermark };
}

/**
 * Whether the watermark has moved far enough past the one on disk to be written: every half
 * max_clock_skew (at most 60 s) of progress, whether the time came from the box's clock or a
 * server ack. A power cut then loses less than the tolerated skew, so a box rebooted with its
 * clock set back still trips.
 */
export function watermarkWriteDue(file: ApplianceStateFile, persistedWatermark: number): boolean {
  const every = Math.max(1_000, Math.min(60_000, file.settings.maxClockSkewMs / 2));
  return file.watermark - persistedWatermark >= every;
}
