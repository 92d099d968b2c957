import { describe, expect, it } from "vitest";
import { DAY_MS, DEFAULT_SETTINGS, applySettingsPatch, formatDuration, validateSettings, type Settings } from "../src/index.js";
import { S, fastSettings } from "./fixtures.js";

describe("validateSettings", () => {
  it("accepts the defaults of docs/design.md §5", () => {
    expect(DEFAULT_SETTINGS).toEqual({
      heartbeatIntervalMs: 60 * S,
      heartbeatTimeoutMs: 300 * S,
      graceWindowMs: 14 * DAY_MS,
      leaseRenewAfterMs: 3600 * S,
      maxClockSkewMs: 300 * S,
      sweepIntervalMs: 60 * S,
      airGappedLeaseMs: 90 * DAY_MS,
      airGappedRenewAfterMs: 60 * DAY_MS,
    });
    expect(validateSettings(DEFAULT_SETTINGS).ok).toBe(true);
  });

  it("accepts seconds-scale settings, as tests shrink them", () => {
    expect(validateSettings(fastSettings)).toEqual({ ok: true, settings: fastSettings });
    const smallest: Settings = {
      heartbeatIntervalMs: 1 * S,
      heartbeatTimeoutMs: 2 * S,
      graceWindowMs: 3 * S,
      leaseRenewAfterMs: 1 * S,
      maxClockSkewMs: 0,
      sweepIntervalMs: 1 * S,
      airGappedLeaseMs: 2 * S,
      airGappedRenewAfterMs: 1 * S,
    };
    expect(validateSettings(smallest).ok).toBe(true);
  });

  it("accepts the upper bounds", () => {
    const largest: Settings = {
      heartbeatIntervalMs: 3600 * S,
      heartbeatTimeoutMs: 364 * DAY_MS,
      graceWindowMs: 365 * DAY_MS,
      leaseRenewAfterMs: 364 * DAY_MS,
      maxClockSkewMs: DAY_MS,
      sweepIntervalMs: DAY_MS,
      airGappedLeaseMs: 400 * DAY_MS,
      airGappedRenewAfterMs: 400 * DAY_MS - 1,
    };
    expect(validateSettings(largest).ok).toBe(true);
  });

  const cases: Array<[string, Partial<Settings>, string]> = [
    ["grace_window below 1 s", { graceWindowMs: 999 }, "grace_window"],
    ["grace_window above 365 d", { graceWindowMs: 365 * DAY_MS + 1 }, "grace_window"],
    ["grace_window NaN", { graceWindowMs: Number.NaN }, "grace_window"],
    ["heartbeat_interval below 1 s", { heartbeatIntervalMs: 500 }, "heartbeat_interval"],
    ["heartbeat_interval above 1 h", { heartbeatIntervalMs: 3600 * S + 1, heartbeatTimeoutMs: 7200 * S, graceWindowMs: DAY_MS }, "heartbeat_interval"],
    ["heartbeat_timeout equal to the interval", { heartbeatTimeoutMs: 1 * S }, "heartbeat_timeout"],
    ["heartbeat_timeout equal to the grace window", { heartbeatTimeoutMs: 10 * S }, "heartbeat_timeout"],
    ["lease_renew_after below 1 s", { leaseRenewAfterMs: 0 }, "lease_renew_after"],
    ["lease_renew_after at the grace window", { leaseRenewAfterMs: 10 * S }, "lease_renew_after"],
    ["max_clock_skew negative", { maxClockSkewMs: -1 }, "max_clock_skew"],
    ["max_clock_skew above 1 d", { maxClockSkewMs: DAY_MS + 1 }, "max_clock_skew"],
    ["sweep_interval below 1 s", { sweepIntervalMs: 0 }, "sweep_interval"],
    ["sweep_interval above 1 d", { sweepIntervalMs: DAY_MS + 1 }, "sweep_interval"],
    ["air_gapped_lease below 1 s", { airGappedLeaseMs: 999, airGappedRenewAfterMs: 500 }, "air_gapped_lease"],
    ["air_gapped_lease above 400 d", { airGappedLeaseMs: 400 * DAY_MS + 1 }, "air_gapped_lease"],
    ["air_gapped_lease NaN", { airGappedLeaseMs: Number.NaN }, "air_gapped_lease"],
    ["air_gapped_renew_after below 1 s", { airGappedRenewAfterMs: 999 }, "air_gapped_renew_after"],
    ["air_gapped_renew_after at the air-gapped lease", { airGappedRenewAfterMs: 20 * S }, "air_gapped_renew_after"],
    ["air_gapped_renew_after above the air-gapped lease", { airGappedRenewAfterMs: 21 * S }, "air_gapped_renew_after"],
    ["air_gapped_renew_after Infinity", { airGappedRenewAfterMs: Number.POSITIVE_INFINITY }, "air_gapped_renew_after"],
  ];
  it.each(cases)("rejects %s naming the field", (_name, patch, field) => {
    const v = validateSettings({ ...fastSettings, ...patch });
    expect(v.ok).toBe(false);
    if (v.ok) return;
    expect(v.code).toBe("SETTINGS_OUT_OF_RANGE");
    expect(v.field).toBe(field);
    expect(v.message).toContain(field);
  });

  it("says the range in human units", () => {
    const v = validateSettings({ ...DEFAULT_SETTINGS, graceWindowMs: 0 });
    expect(v).toMatchObject({ ok: false, message: "grace_window must be between 1 s and 365 d (got 0 ms)" });
  });

  it("says the air-gapped ranges in human units", () => {
    expect(validateSettings({ ...DEFAULT_SETTINGS, airGappedLeaseMs: 401 * DAY_MS })).toMatchObject({
      ok: false,
      message: "air_gapped_lease must be between 1 s and 400 d (got 401 d)",
    });
    expect(validateSettings({ ...DEFAULT_SETTINGS, airGappedRenewAfterMs: 90 * DAY_MS })).toMatchObject({
      ok: false,
      message: "air_gapped_renew_after must be at least 1 s and less than air_gapped_lease (90 d) (got 90 d)",
    });
  });

  it("validates a partial update against the merged whole", () => {
    expect(applySettingsPatch(fastSettings, { graceWindowMs: 20 * S })).toEqual({
      ok: true,
      settings: { ...fastSettings, graceWindowMs: 20 * S },
    });
    // Shrinking the window below the timeout is caught through the relation, not the field alone.
    expect(applySettingsPatch(fastSettings, { graceWindowMs: 2 * S })).toMatchObject({
      ok: false,
      field: "heartbeat_timeout",
    });
    // Shrinking the air-gapped lease to its renewal age is caught on the renewal.
    expect(applySettingsPatch(fastSettings, { airGappedLeaseMs: fastSettings.airGappedRenewAfterMs })).toMatchObject({
      ok: false,
      field: "air_gapped_renew_after",
    });
  });

  it("formats durations with the largest exact unit", () => {
    expect([formatDuration(14 * DAY_MS), formatDuration(300 * S), formatDuration(90 * S), formatDuration(1500)]).toEqual([
      "14 d",
      "5 min",
      "90 s",
      "1500 ms",
    ]);
  });
});
