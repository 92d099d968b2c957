/**
 * Settings (licensing/settings): the licensing timings as durations, the air-gapped lease among them. Saving sends only what
 * changed (update_mask) and the version it was read at (expected_version), so two operators
 * editing at once cannot overwrite each other: the second is told to reload. The server's
 * range checks come back on the field they name.
 */
import { durationFromMs, durationMs, type Duration } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { useMutation, useQuery } from "@connectrpc/connect-query";
import {
  AIR_GAPPED_LEASE_RANGE_MS,
  AIR_GAPPED_RENEW_AFTER_MIN_MS,
  DEFAULT_SETTINGS,
  formatDuration,
  GRACE_WINDOW_RANGE_MS,
  HEARTBEAT_INTERVAL_RANGE_MS,
  LEASE_RENEW_AFTER_MIN_MS,
  MAX_CLOCK_SKEW_RANGE_MS,
  SWEEP_INTERVAL_RANGE_MS,
} from "@lcp/domain";
import { LicensingService } from "@lcp/proto/licensing/v1/licensing_service_pb";
import type { Settings } from "@lcp/proto/licensing/v1/types_pb";
import { useQueryClient } from "@tanstack/react-query";
import { useEffect, useState, type FormEvent } from "react";
import { Button } from "../components/Button.js";
import { ErrorBanner, Notice } from "../components/ErrorBanner.js";
import { DurationField } from "../components/Field.js";
import { Page } from "../components/Page.js";
import { RelativeTime } from "../components/RelativeTime.js";
import { Skeleton } from "../components/Spinner.js";
import { durationValueFromMs, durationValueToMs, type DurationValue } from "../lib/duration.js";
import { describeError } from "../lib/errors.js";
import { useSession } from "../lib/session-context.js";

/** The settings fields by their proto names, as update_mask and refusals name them. */
const FIELDS = ["heartbeat_interval", "heartbeat_timeout", "grace_window", "lease_renew_after", "max_clock_skew", "sweep_interval", "air_gapped_lease", "air_gapped_renew_after"] as const;
type FieldName = (typeof FIELDS)[number];

type DurationKey = "heartbeatInterval" | "heartbeatTimeout" | "graceWindow" | "leaseRenewAfter" | "maxClockSkew" | "sweepInterval" | "airGappedLease" | "airGappedRenewAfter";
const KEYS: Readonly<Record<FieldName, keyof Pick<Settings, DurationKey>>> = {
  heartbeat_interval: "heartbeatInterval",
  heartbeat_timeout: "heartbeatTimeout",
  grace_window: "graceWindow",
  lease_renew_after: "leaseRenewAfter",
  max_clock_skew: "maxClockSkew",
  sweep_interval: "sweepInterval",
  air_gapped_lease: "airGappedLease",
  air_gapped_renew_after: "airGappedRenewAfter",
};

const f = formatDuration;
const META: Readonly<Record<FieldName, { label: string; hint: string }>> = {
  heartbeat_interval: {
    label: "Heartbeat interval",
    hint: `How often a box sends a beat on its stream. ${f(HEARTBEAT_INTERVAL_RANGE_MS.min)} to ${f(HEARTBEAT_INTERVAL_RANGE_MS.max)}; default ${f(DEFAULT_SETTINGS.heartbeatIntervalMs)}.`,
  },
  heartbeat_timeout: {
    label: "Heartbeat timeout",
    hint: `Silence longer than this moves an active deployment to grace. More than the heartbeat interval and less than the grace window; default ${f(DEFAULT_SETTINGS.heartbeatTimeoutMs)}.`,
  },
  grace_window: {
    label: "Grace window",
    hint: `How long a box runs offline on its lease before it locks down. ${f(GRACE_WINDOW_RANGE_MS.min)} to ${f(GRACE_WINDOW_RANGE_MS.max)}; default ${f(DEFAULT_SETTINGS.graceWindowMs)}.`,
  },
  lease_renew_after: {
    label: "Lease renewal",
    hint: `A lease older than this is re-signed on the box's next heartbeat. At least ${f(LEASE_RENEW_AFTER_MIN_MS)} and less than the grace window; default ${f(DEFAULT_SETTINGS.leaseRenewAfterMs)}.`,
  },
  max_clock_skew: {
    label: "Max clock skew",
    hint: `How far a box's clock may fall behind the latest time it has seen before it counts as tampering. 0 to ${f(MAX_CLOCK_SKEW_RANGE_MS.max)}; default ${f(DEFAULT_SETTINGS.maxClockSkewMs)}.`,
  },
  sweep_interval: {
    label: "Sweep interval",
    hint: `How often the fleet sweep runs. ${f(SWEEP_INTERVAL_RANGE_MS.min)} to ${f(SWEEP_INTERVAL_RANGE_MS.max)}; default ${f(DEFAULT_SETTINGS.sweepIntervalMs)}.`,
  },
  air_gapped_lease: {
    label: "Air-gapped lease",
    hint: `How long an air-gapped box runs on a lease answered by file before it locks; also how long a revoked air-gapped box may keep running. ${f(AIR_GAPPED_LEASE_RANGE_MS.min)} to ${f(AIR_GAPPED_LEASE_RANGE_MS.max)}; default ${f(DEFAULT_SETTINGS.airGappedLeaseMs)}.`,
  },
  air_gapped_renew_after: {
    label: "Air-gapped renewal after",
    hint: `A lease older than this makes an air-gapped box write its next renewal request. At least ${f(AIR_GAPPED_RENEW_AFTER_MIN_MS)} and less than the air-gapped lease; default ${f(DEFAULT_SETTINGS.airGappedRenewAfterMs)}.`,
  },
};

type Values = Record<FieldName, DurationValue>;

function msOf(d: Duration | undefined): number | null {
  return d ? durationMs(d) : null;
}

function valuesOf(s: Settings): Values {
  const out = {} as Values;
  for (const name of FIELDS) out[name] = durationValueFromMs(msOf(s[KEYS[name]]) ?? 0);
  return out;
}

interface Loaded {
  readonly settings: Settings;
  readonly values: Values;
}

/** The settings screen; see the module comment. */
export function SettingsScreen() {
  const { lacks } = useSession();
  const manageReason = lacks("settings.manage");
  const queryClient = useQueryClient();
  const query = useQuery(LicensingService.method.getSettings, {}, { enabled: lacks("license.read") === null });
  const [form, setForm] = useState<Loaded | null>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const update = useMutation(LicensingService.method.updateSettings, {
    onSuccess: (res) => {
      if (!res.settings) return;
      setForm({ settings: res.settings, values: valuesOf(res.settings) });
      setSaved(`Settings saved (version ${res.settings.version}).`);
      void queryClient.invalidateQueries();
    },
  });

  const loaded = query.data?.settings;
  // Take the server's values when they first arrive; later fetches never overwrite typing.
  useEffect(() => {
    if (loaded && form === null) setForm({ settings: loaded, values: valuesOf(loaded) });
  }, [loaded, form]);

  const reload = async () => {
    update.reset();
    setSaved(null);
    const res = await query.refetch();
    const s = res.data?.settings;
    if (s) setForm({ settings: s, values: valuesOf(s) });
  };

  const described = update.error ? describeError(update.error) : null;
  const conflict = described !== null && (described.conflict || described.code === Code.FailedPrecondition);
  const fieldErrors = described?.fieldErrors ?? {};

  const parsed = form ? Object.fromEntries(FIELDS.map((n) => [n, durationValueToMs(form.values[n])])) as Record<FieldName, number | null> : null;
  const changed = form && parsed ? FIELDS.filter((n) => parsed[n] !== null && parsed[n] !== msOf(form.settings[KEYS[n]])) : [];
  const unreadable = parsed ? FIELDS.filter((n) => parsed[n] === null) : [];

  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!form || !parsed || update.isPending || manageReason) return;
    setSaved(null);
    if (unreadable.length > 0) return;
    if (changed.length === 0) {
      update.reset();
      setSaved("Nothing changed: there is nothing to save.");
      return;
    }
    const settings: Partial<Record<(typeof KEYS)[FieldName], Duration>> = {};
    for (const n of changed) settings[KEYS[n]] = durationFromMs(parsed[n]!);
    update.mutate({ settings, updateMask: { paths: [...changed] }, expectedVersion: form.settings.version });
  };

  return (
    <Page
      title="Settings"
      permission="license.read"
      intro="The timings every licensing rule reads. A change applies to every deployment from its next derivation; the sweep records the transitions it causes."
    >
      {query.error && !form ? (
        <ErrorBanner error={query.error} title="Could not load the settings" onRetry={() => void query.refetch()} />
      ) : !form ? (
        <Skeleton lines={6} label="Loading the settings" />
      ) : (
        <form className="form" aria-label="Licensing settings" onSubmit={submit} noValidate>
          {manageReason ? (
            <Notice tone="info">
              <p>You can read the settings; changing them {manageReason}.</p>
            </Notice>
          ) : null}
          <p className="muted">
            Version {form.settings.version.toString()}
            {form.settings.updateTime ? (
              <>
                , changed <RelativeTime value={form.settings.updateTime} />
              </>
            ) : null}
            .
          </p>
          <div className="form-grid">
            {FIELDS.map((n) => (
              <DurationField
                key={n}
                name={n}
                label={META[n].label}
                hint={META[n].hint}
                value={form.values[n]}
                disabled={Boolean(manageReason)}
                onChange={(v) => setForm({ ...form, values: { ...form.values, [n]: v } })}
                error={fieldErrors[n] ?? (parsed?.[n] === null ? "Enter a number." : null)}
              />
            ))}
          </div>
          {conflict ? (
            <div className="banner banner-error" role="alert">
              <p className="banner-title">Changed by someone else — reload</p>
              <p>These settings were changed since you opened them. Reload to see the current values, then make your change again.</p>
              <p>
                <Button size="small" onClick={() => void reload()}>
                  Reload settings
                </Button>
              </p>
            </div>
          ) : update.error ? (
            <ErrorBanner error={update.error} title={Object.keys(fieldErrors).length > 0 ? "Check the highlighted field" : "The settings were not saved"} />
          ) : null}
          {saved ? (
            <Notice tone="success" live>
              <p>{saved}</p>
            </Notice>
          ) : null}
          <div className="form-actions">
            <Button type="submit" variant="primary" busy={update.isPending} disabledReason={manageReason}>
              Save settings
            </Button>
            <Button
              disabledReason={manageReason}
              onClick={() => {
                update.reset();
                setSaved(null);
                setForm({ settings: form.settings, values: valuesOf(form.settings) });
              }}
            >
              Discard changes
            </Button>
            {changed.length > 0 ? <span className="muted">{changed.length === 1 ? "1 unsaved change" : `${changed.length} unsaved changes`}</span> : null}
          </div>
        </form>
      )}
    </Page>
  );
}
