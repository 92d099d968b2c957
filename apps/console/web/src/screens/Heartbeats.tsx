/**
 * Heartbeats (licensing/heartbeats, heartbeat.read): the fleet live. The fleet by derived state
 * now (GetFleetSummary), the state changes per hour over the last day (audit CountEvents, with
 * audit.read), and every deployment's heartbeat (ListHeartbeats): its state, whether its box
 * holds the stream, how long since its last beat, its lease, agent, replica and pending
 * directives, filtered by state and keyset-paged. "Send directive" (directive.send) pushes
 * REFRESH_KEYS, SET_INTERVAL, RENEW_LEASE or RENEW_CERTIFICATE to a box.
 *
 * Why a poll and not a server stream: the console server forwards unary calls only (it is a
 * thin proxy that adds the admin's token, not a stream multiplexer); a poll is stateless, so it
 * survives a console or licensing replica being replaced mid-watch with nothing to resume; and
 * its cost is bounded per open tab (two small reads every two seconds, one audit count a
 * minute), paused while the tab is hidden and by the operator's "Pause live updates".
 */
import { durationMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { useQuery } from "@connectrpc/connect-query";
import { AuditService } from "@lcp/proto/audit/v1/audit_service_pb";
import { LicensingService } from "@lcp/proto/licensing/v1/licensing_service_pb";
import { DeploymentState, type HeartbeatStatus } from "@lcp/proto/licensing/v1/types_pb";
import { keepPreviousData } from "@tanstack/react-query";
import { useCallback, useEffect, useMemo, useState, type FormEvent } from "react";
import { BarChart } from "../components/BarChart.js";
import { Button } from "../components/Button.js";
import { DataTable, type Column } from "../components/DataTable.js";
import { DirectiveDialog, type SentDirective } from "../components/DirectiveDialog.js";
import { EmptyState } from "../components/EmptyState.js";
import { ErrorBanner, Notice } from "../components/ErrorBanner.js";
import { SelectField, TextField } from "../components/Field.js";
import { HourlyChart } from "../components/HourlyChart.js";
import { LiveStatus } from "../components/LiveStatus.js";
import { Page, Section } from "../components/Page.js";
import { Skeleton } from "../components/Spinner.js";
import { StateBadge, stateText } from "../components/StateBadge.js";
import { formatCount, shareText } from "../lib/chart.js";
import { directiveOutcomeText } from "../lib/directive.js";
import { formatElapsed } from "../lib/duration.js";
import { describeError } from "../lib/errors.js";
import { fleetSegments, fleetSummaryText, floorToHour, hourlyBuckets, hourWindow, STATE_CHANGE_ACTIONS, stateChangeCountRequest, type FleetSegment } from "../lib/fleet.js";
import { dateOf, FILTER_STATES, formatDateTime, isUuid, shortId, STATE_LABELS } from "../lib/format.js";
import { Link, useSearchParams } from "../lib/navigation.js";
import { deploymentPath } from "../lib/router.js";
import { useSession } from "../lib/session-context.js";
import { useNow } from "../lib/use-now.js";
import { useKeysetPaging } from "../lib/keyset-paging.js";
import "../components/operations.css";
import { FilterActions } from "../components/FilterActions.js";

const PAGE_SIZE = 50;
/** The table and the fleet summary: fresh enough to watch a box reconnect. */
const LIVE_INTERVAL_MS = 2_000;
/** The hourly chart changes by the hour; a minute is plenty. */
const HOURLY_INTERVAL_MS = 60_000;

const STATE_OPTIONS = [{ value: "", label: "Any state" }, ...FILTER_STATES.map((s) => ({ value: String(s), label: STATE_LABELS[s] }))];

const TONES: Readonly<Partial<Record<DeploymentState, string>>> = {
  [DeploymentState.ACTIVE]: "active",
  [DeploymentState.GRACE]: "grace",
  [DeploymentState.SUSPENDED]: "suspended",
  [DeploymentState.PENDING]: "pending",
  [DeploymentState.LOCKED]: "locked",
};

function toneOf(s: FleetSegment): string {
  return TONES[s.state] ?? "unknown";
}

// ---- The fleet by state ----

function FleetSummary({ paused }: { paused: boolean }) {
  const { lacks } = useSession();
  const missing = lacks("license.read");
  const query = useQuery(
    LicensingService.method.getFleetSummary,
    {},
    { enabled: missing === null, refetchInterval: paused ? false : LIVE_INTERVAL_MS, refetchIntervalInBackground: false },
  );
  if (missing) {
    return (
      <Notice tone="warning" title="Your role cannot see the fleet summary">
        <p>The fleet summary {missing}.</p>
      </Notice>
    );
  }
  if (!query.data) {
    if (query.error) return <ErrorBanner error={query.error} title="Could not load the fleet summary" onRetry={() => void query.refetch()} />;
    return <Skeleton lines={5} label="Loading the fleet summary" />;
  }
  const segments = fleetSegments(query.data.counts);
  const total = Number(query.data.total);
  const countedAt = dateOf(query.data.countTime);
  const at = countedAt ? formatDateTime(countedAt, true) : "an unknown time";
  return (
    <>
      {query.error ? <ErrorBanner error={query.error} title="Could not refresh the fleet summary; showing the last counts" /> : null}
      <p className="section-sub">
        Counted over every deployment at{" "}
        {countedAt ? <time dateTime={countedAt.toISOString()}>{at}</time> : at}.
      </p>
      {total === 0 ? (
        <EmptyState title="No deployments yet">The fleet appears here once a deployment is provisioned.</EmptyState>
      ) : (
        <div className="chart-layout">
          <BarChart data={segments.map((s) => ({ key: s.key, label: s.label, value: s.count, tone: toneOf(s) }))} total={total} summary={fleetSummaryText(segments, total, at)} />
          <table className="table count-table">
            <caption className="table-caption">Deployments by state</caption>
            <thead>
              <tr>
                <th scope="col">State</th>
                <th scope="col" className="num">
                  Deployments
                </th>
                <th scope="col" className="num">
                  Share
                </th>
              </tr>
            </thead>
            <tbody>
              {segments.map((s) => (
                <tr key={s.key}>
                  <th scope="row">{s.label}</th>
                  <td className="num">{formatCount(s.count)}</td>
                  <td className="num">{shareText(s.count, total)}</td>
                </tr>
              ))}
            </tbody>
            <tfoot>
              <tr>
                <th scope="row">Total</th>
                <td className="num">{formatCount(total)}</td>
                <td className="num">100%</td>
              </tr>
            </tfoot>
          </table>
        </div>
      )}
    </>
  );
}

// ---- State changes per hour ----

function HourlyChanges({ paused }: { paused: boolean }) {
  const { lacks } = useSession();
  const missing = lacks("audit.read");
  const now = useNow();
  // The window moves only when the hour does, so the query keeps one cache entry per hour and
  // the 60-second refetch asks again for the same hours.
  const hourStart = floorToHour(now);
  const hours = useMemo(() => hourWindow(hourStart), [hourStart]);
  const input = useMemo(() => stateChangeCountRequest(hours), [hours]);
  const query = useQuery(AuditService.method.countEvents, input, {
    enabled: missing === null,
    placeholderData: keepPreviousData,
    refetchInterval: paused ? false : HOURLY_INTERVAL_MS,
    refetchIntervalInBackground: false,
  });
  if (missing) {
    return (
      <Notice tone="info" title="Your role cannot see this chart">
        <p>State changes are counted from the audit trail, and reading it {missing}. The table below still shows every deployment's state.</p>
      </Notice>
    );
  }
  if (!query.data) {
    if (query.error) return <ErrorBanner error={query.error} title="Could not count the state changes" onRetry={() => void query.refetch()} />;
    return <Skeleton lines={5} label="Counting the state changes" />;
  }
  const buckets = hourlyBuckets(
    hours,
    query.data.counts.map((c) => ({ bucketStartMs: c.bucketStartTime ? timestampMs(c.bucketStartTime) : NaN, action: c.action, count: c.count })),
    now,
  );
  return (
    <>
      {query.error ? <ErrorBanner error={query.error} title="Could not refresh the state changes; showing the last counts" /> : null}
      <p className="section-sub">
        Every change of a deployment&apos;s derived state recorded in the audit trail, by the hour it happened (your local time). Activations and rebinds are recorded on
        the licence with the operator&apos;s command and are in Audit.
      </p>
      <HourlyChart buckets={buckets} actions={STATE_CHANGE_ACTIONS} caption="State changes per hour" />
    </>
  );
}

// ---- The heartbeat table ----

interface Filters {
  readonly state: string;
  readonly deployment: string;
}

const NO_FILTERS: Filters = { state: "", deployment: "" };

function FilterForm({ filters, onApply, fieldErrors }: { filters: Filters; onApply: (f: Filters) => void; fieldErrors: Readonly<Record<string, string>> }) {
  const [draft, setDraft] = useState(filters);
  const [problem, setProblem] = useState<string | null>(null);
  useEffect(() => setDraft(filters), [filters]);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const deployment = draft.deployment.trim().toLowerCase();
    if (deployment !== "" && !isUuid(deployment)) {
      setProblem("A deployment ID is a UUID such as 01890a5d-ac96-774b-bcce-b302099a8057.");
      return;
    }
    setProblem(null);
    onApply({ state: draft.state, deployment });
  };
  return (
    <form className="filters filters-2" aria-label="Filter heartbeats" onSubmit={submit} noValidate>
      <SelectField label="State" value={draft.state} options={STATE_OPTIONS} onChange={(state) => setDraft({ ...draft, state })} error={fieldErrors.states} />
      <TextField
        label="Deployment ID"
        value={draft.deployment}
        onChange={(deployment) => setDraft({ ...draft, deployment })}
        mono
        spellCheck={false}
        maxLength={64}
        error={problem ?? fieldErrors.deployment_id}
      />
      <FilterActions
        onClear={() => {
          setDraft(NO_FILTERS);
          setProblem(null);
          onApply(NO_FILTERS);
        }}
      />
    </form>
  );
}

function lagMs(h: HeartbeatStatus): number | null {
  return h.lag ? durationMs(h.lag) : null;
}

function columns(onDirective: (deploymentId: string) => void, directiveReason: string | null): ReadonlyArray<Column<HeartbeatStatus>> {
  return [
    {
      key: "deployment",
      header: "Deployment",
      className: "col-id",
      render: (h) => (
        <Link to={deploymentPath(h.deploymentId)} className="mono strong-link" title={h.deploymentId}>
          {shortId(h.deploymentId)}
          <span className="visually-hidden"> (deployment {h.deploymentId})</span>
        </Link>
      ),
    },
    { key: "state", header: "State", sortValue: (h) => stateText(h.state), render: (h) => <StateBadge state={h.state} /> },
    {
      key: "stream",
      header: "Stream",
      sortValue: (h) => (h.connected ? `0 ${h.replica}` : "1"),
      render: (h) =>
        h.connected ? (
          <>
            <span className="stream-on nowrap">
              <span aria-hidden="true">● </span>Connected
            </span>
            {h.replica ? <span className="cell-sub mono">to {h.replica}</span> : null}
          </>
        ) : (
          <span className="stream-off nowrap">
            <span aria-hidden="true">○ </span>Not connected
          </span>
        ),
    },
    {
      key: "lag",
      header: "Last beat",
      sortValue: (h) => lagMs(h) ?? Number.MAX_SAFE_INTEGER,
      render: (h) => {
        const lag = lagMs(h);
        const seen = dateOf(h.lastSeenTime);
        if (lag === null) return <span className="muted">never</span>;
        return <span title={seen ? formatDateTime(seen, true) : undefined}>{lag < 1000 ? "under 1 s ago" : `${formatElapsed(lag)} ago`}</span>;
      },
    },
    { key: "lease", header: "Lease seq", className: "num", render: (h) => String(h.leaseSeq) },
    { key: "agent", header: "Agent", render: (h) => (h.agentVersion ? <span className="mono">{h.agentVersion}</span> : <span className="muted">—</span>) },
    { key: "pending", header: "Pending directives", className: "num", sortValue: (h) => h.pendingDirectives, render: (h) => String(h.pendingDirectives) },
    {
      key: "actions",
      header: "Actions",
      render: (h) => (
        <Button size="small" disabledReason={directiveReason} aria-label={`Send directive to ${h.deploymentId}`} onClick={() => onDirective(h.deploymentId)}>
          Send directive
        </Button>
      ),
    },
  ];
}

/** The Heartbeats screen; see the module comment. */
export function HeartbeatsScreen() {
  const { lacks } = useSession();
  const [paused, setPaused] = useState(false);
  const [params, setParams] = useSearchParams();
  const filters: Filters = useMemo(() => ({ state: params.get("state") ?? "", deployment: params.get("deployment") ?? "" }), [params]);
  const filterKey = JSON.stringify(filters);
  const paging = useKeysetPaging(filterKey);
  const stateNumber = Number(filters.state);
  const state = filters.state !== "" && (FILTER_STATES as readonly number[]).includes(stateNumber) ? (stateNumber as DeploymentState) : null;

  const query = useQuery(
    LicensingService.method.listHeartbeats,
    { states: state === null ? [] : [state], deploymentId: filters.deployment, pageSize: PAGE_SIZE, pageToken: paging.token },
    {
      enabled: lacks("heartbeat.read") === null,
      placeholderData: keepPreviousData,
      refetchInterval: paused ? false : LIVE_INTERVAL_MS,
      refetchIntervalInBackground: false,
    },
  );
  const fieldErrors = query.error ? describeError(query.error).fieldErrors : {};

  const directiveReason = lacks("directive.send");
  const [dialog, setDialog] = useState({ open: false, deploymentId: "", n: 0 });
  const [sent, setSent] = useState<SentDirective | null>(null);
  const openDirective = useCallback((deploymentId: string) => setDialog((d) => ({ open: true, deploymentId, n: d.n + 1 })), []);
  const cols = useMemo(() => columns(openDirective, directiveReason), [openDirective, directiveReason]);
  const filtered = filterKey !== JSON.stringify(NO_FILTERS);

  return (
    <Page
      title="Heartbeats"
      permission="heartbeat.read"
      intro="The fleet as the control plane sees it now: each deployment's derived state, whether its box holds the heartbeat stream, and how long since it last beat."
      actions={
        <Button variant="primary" disabledReason={directiveReason} onClick={() => openDirective("")}>
          Send directive
        </Button>
      }
    >
      <LiveStatus updatedAt={query.dataUpdatedAt} paused={paused} onTogglePause={() => setPaused((p) => !p)} every="every 2 seconds" />
      {sent ? (
        <Notice tone="success" title="Directive sent" live>
          <p>{directiveOutcomeText(sent.label, sent.delivered)}</p>
          <p className="banner-meta">
            Deployment <span className="mono">{sent.deploymentId}</span>
            {sent.directiveId ? (
              <>
                , directive <span className="mono">{sent.directiveId}</span>
              </>
            ) : null}
            .
          </p>
        </Notice>
      ) : null}
      <Section title="Fleet by state">
        <FleetSummary paused={paused} />
      </Section>
      <Section title="State changes in the last 24 hours">
        <HourlyChanges paused={paused} />
      </Section>
      <Section title="Deployment heartbeats" className="section-table">
        <FilterForm filters={filters} fieldErrors={fieldErrors} onApply={(f) => setParams({ state: f.state, deployment: f.deployment })} />
        <div className="dense">
          <DataTable
            caption="Heartbeats"
            captionHidden
            columns={cols}
            rows={query.data?.heartbeats}
            rowKey={(h) => h.deploymentId}
            loading={query.isPending}
            refreshing={query.isFetching && query.isPlaceholderData}
            error={query.error}
            onRetry={() => void query.refetch()}
            empty={
              filtered ? (
                <EmptyState title="No deployments match these filters">Clear the filters to see every deployment.</EmptyState>
              ) : (
                <EmptyState title="No deployments yet">A deployment appears here once it is provisioned; its heartbeat once its box activates.</EmptyState>
              )
            }
            paging={paging.controls(query)}
          />
        </div>
      </Section>
      <DirectiveDialog
        key={dialog.n}
        open={dialog.open}
        initialDeploymentId={dialog.deploymentId}
        onClose={() => setDialog((d) => ({ ...d, open: false }))}
        onSent={(s) => {
          setSent(s);
          setDialog((d) => ({ ...d, open: false }));
        }}
      />
    </Page>
  );
}
