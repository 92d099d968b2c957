/**
 * Sweeps (licensing/sweeps, fleet.sweep): "Run sweep" and "Dry run" (Sweep, each confirmed
 * first), the report of a run (status, examined, transitions from → to, conflicts, failures,
 * a dry run's planned transitions, duration, who asked), and the past runs, newest first
 * (ListSweeps, keyset-paged), each opening its report (GetSweep). The report shown is in the
 * URL (`?sweep=<id>`), so it can be bookmarked and Back returns to the previous one.
 */
import { create } from "@bufbuild/protobuf";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { createConnectQueryKey, useMutation, useQuery, useTransport } from "@connectrpc/connect-query";
import {
  FleetSweepService,
  GetSweepResponseSchema,
  SweepStatus,
  SweepTrigger,
  type SweepRun,
  type TransitionCount,
} from "@lcp/proto/fleet/v1/fleet_sweep_service_pb";
import type { Transition } from "@lcp/proto/licensing/v1/types_pb";
import { keepPreviousData, useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef, useState, type RefObject } from "react";
import { Button } from "../components/Button.js";
import { ConfirmDialog } from "../components/ConfirmDialog.js";
import { DataTable, type Column } from "../components/DataTable.js";
import { EmptyState } from "../components/EmptyState.js";
import { ErrorBanner, Notice } from "../components/ErrorBanner.js";
import { Page, Section } from "../components/Page.js";
import { DateTime } from "../components/RelativeTime.js";
import { Skeleton, Spinner } from "../components/Spinner.js";
import { formatCount } from "../lib/chart.js";
import { formatElapsed } from "../lib/duration.js";
import { describeError } from "../lib/errors.js";
import { dateOf, isUuid, labelOf, shortId } from "../lib/format.js";
import { Link, useSearchParams } from "../lib/navigation.js";
import { deploymentPath } from "../lib/router.js";
import { useSession } from "../lib/session-context.js";
import { runKindText, SWEEP_STATUS_LABELS, SWEEP_TRIGGER_LABELS, transitionText, transitionTotal } from "../lib/sweep.js";
import { useKeysetPaging } from "../lib/keyset-paging.js";
import "../components/operations.css";

const PAGE_SIZE = 20;
const PLANNED_PAGE = 50;
const PLANNED_LISTED_MAX = 10_000;
/** A run in progress is watched closely; otherwise the list picks up scheduled runs. */
const RUNNING_POLL_MS = 2_000;
const IDLE_POLL_MS = 30_000;

function StatusText({ run }: { run: SweepRun }) {
  const label = labelOf(SWEEP_STATUS_LABELS, run.status);
  switch (run.status) {
    case SweepStatus.RUNNING:
      return <span className="status-running">{label}</span>;
    case SweepStatus.FAILED:
      return <span className="status-failed">{label}</span>;
    case SweepStatus.SUCCEEDED:
      return <span className="status-succeeded">{label}</span>;
    default:
      return <span>{label}</span>;
  }
}

/** "Dry run, on demand by alice", "Sweep, scheduled": kind, trigger and who asked, in one cell. */
function runDescription(run: SweepRun): string {
  const trigger = labelOf(SWEEP_TRIGGER_LABELS, run.trigger).toLowerCase();
  const by = run.requestedBy && run.trigger !== SweepTrigger.SCHEDULED ? ` by ${run.requestedBy}` : "";
  return `${runKindText(run.dryRun)}, ${trigger}${by}`;
}

function durationText(run: SweepRun): string {
  return run.duration ? formatElapsed(durationMs(run.duration)) : run.status === SweepStatus.RUNNING ? "running" : "—";
}

const TRANSITION_COLUMNS: ReadonlyArray<Column<TransitionCount>> = [
  { key: "change", header: "From → to", sortValue: (t) => transitionText(t.fromState, t.toState, t.lockReason), render: (t) => transitionText(t.fromState, t.toState, t.lockReason) },
  { key: "count", header: "Deployments", className: "num", sortValue: (t) => Number(t.count), render: (t) => formatCount(t.count) },
];

const PLANNED_COLUMNS: ReadonlyArray<Column<Transition>> = [
  {
    key: "deployment",
    header: "Deployment",
    className: "col-id",
    render: (t) => (
      <Link to={deploymentPath(t.deploymentId)} className="mono" title={t.deploymentId}>
        {shortId(t.deploymentId)}
        <span className="visually-hidden"> (deployment {t.deploymentId})</span>
      </Link>
    ),
  },
  { key: "change", header: "From → to", sortValue: (t) => transitionText(t.fromState, t.toState, t.lockReason), render: (t) => transitionText(t.fromState, t.toState, t.lockReason) },
];

function PlannedTransitions({ planned }: { planned: readonly Transition[] }) {
  const [page, setPage] = useState(1);
  const rows = planned.slice((page - 1) * PLANNED_PAGE, page * PLANNED_PAGE);
  return (
    <>
      <div className="dense">
        <DataTable
          caption="Planned transitions"
          captionHidden
          columns={PLANNED_COLUMNS}
          rows={rows}
          rowKey={(t) => t.deploymentId}
          empty={<EmptyState title="Nothing to change">Every deployment's stored state already matches what its data says.</EmptyState>}
          paging={planned.length > PLANNED_PAGE ? { page, hasNext: page * PLANNED_PAGE < planned.length, onNext: () => setPage(page + 1), onFirst: () => setPage(1) } : undefined}
        />
      </div>
      {planned.length >= PLANNED_LISTED_MAX ? <p className="muted">A dry run lists at most {formatCount(PLANNED_LISTED_MAX)} planned transitions; the counts above are complete.</p> : null}
    </>
  );
}

function SweepReport({ run }: { run: SweepRun }) {
  const total = transitionTotal(run.transitions);
  const kind = runKindText(run.dryRun);
  return (
    <>
      {run.status === SweepStatus.FAILED ? (
        <Notice tone="warning" title="The run stopped part-way">
          <p>{run.error || "No reason was recorded."}</p>
          <p>The report says what was done; the next run completes the rest.</p>
        </Notice>
      ) : null}
      {run.status === SweepStatus.RUNNING ? (
        <p>
          <Spinner size="small" decorative /> Running: the counts grow until it finishes.
        </p>
      ) : null}
      <dl className="report-stats">
        <div className="stat">
          <dt>Examined</dt>
          <dd>{formatCount(run.examined)}</dd>
        </div>
        <div className="stat">
          <dt>{run.dryRun ? "Transitions it would make" : "Transitions made"}</dt>
          <dd>{formatCount(total)}</dd>
        </div>
        <div className="stat">
          <dt>Conflicts</dt>
          <dd>{formatCount(run.conflicts)}</dd>
        </div>
        <div className="stat">
          <dt>Failures</dt>
          <dd>{formatCount(run.failures)}</dd>
        </div>
      </dl>
      <dl className="dl">
        <dt>Status</dt>
        <dd>
          <StatusText run={run} />
        </dd>
        <dt>Kind</dt>
        <dd>{run.dryRun ? "Dry run: changed nothing" : "Sweep: changes applied and boxes told"}</dd>
        <dt>Trigger</dt>
        <dd>{labelOf(SWEEP_TRIGGER_LABELS, run.trigger)}</dd>
        <dt>Requested by</dt>
        <dd>{run.requestedBy || <span className="muted">—</span>}</dd>
        <dt>Started</dt>
        <dd>
          <DateTime value={run.startTime} />
        </dd>
        <dt>Finished</dt>
        <dd>
          <DateTime value={run.finishTime} fallback={run.status === SweepStatus.RUNNING ? "not yet" : "—"} />
        </dd>
        <dt>Duration</dt>
        <dd>{durationText(run)}</dd>
        <dt>Run ID</dt>
        <dd className="mono">{run.id}</dd>
      </dl>
      {run.conflicts > 0n ? (
        <p className="muted">Conflicts are deployments another writer changed while the run looked at them; the next sweep reconciles them.</p>
      ) : null}
      <h3 className="subhead">{run.dryRun ? "Transitions it would make" : "Transitions"}</h3>
      <DataTable
        caption={`${kind} transitions by change`}
        captionHidden
        columns={TRANSITION_COLUMNS}
        rows={run.transitions}
        rowKey={(t) => `${t.fromState}-${t.toState}-${t.lockReason}`}
        empty={<p className="muted">{run.dryRun ? "None: a sweep now would change nothing." : "None: every deployment was already in its derived state."}</p>}
      />
      {run.dryRun ? (
        <>
          <h3 className="subhead">Planned transitions</h3>
          <PlannedTransitions key={run.id} planned={run.planned} />
        </>
      ) : null}
    </>
  );
}

function ReportSection({ sweepId, headingRef }: { sweepId: string; headingRef: RefObject<HTMLHeadingElement | null> }) {
  const valid = isUuid(sweepId);
  const query = useQuery(
    FleetSweepService.method.getSweep,
    { sweepId },
    {
      enabled: valid,
      refetchInterval: (q) => (q.state.data?.sweep?.status === SweepStatus.RUNNING ? RUNNING_POLL_MS : false),
      refetchIntervalInBackground: false,
    },
  );
  const run = query.data?.sweep;
  const title = run ? `${runKindText(run.dryRun)} report` : "Report";
  return (
    <section className="section" aria-labelledby="sweep-report-title">
      <div className="section-head">
        <h2 id="sweep-report-title" ref={headingRef} tabIndex={-1}>
          {title}
        </h2>
      </div>
      {!valid ? (
        <Notice tone="warning" title="Not a sweep ID">
          <p>The address names a sweep that cannot exist. Open a report from the list of past runs.</p>
        </Notice>
      ) : run ? (
        <>
          {query.error ? <ErrorBanner error={query.error} title="Could not refresh the report" /> : null}
          <SweepReport run={run} />
        </>
      ) : query.error ? (
        <ErrorBanner error={query.error} title="Could not load the report" onRetry={() => void query.refetch()} />
      ) : (
        <Skeleton lines={6} label="Loading the report" />
      )}
    </section>
  );
}

/** The Sweeps screen; see the module comment. */
export function SweepsScreen() {
  const { lacks } = useSession();
  const transport = useTransport();
  const queryClient = useQueryClient();
  const [params, setParams] = useSearchParams();
  const selected = params.get("sweep") ?? "";
  const headingRef = useRef<HTMLHeadingElement>(null);
  const [focusReport, setFocusReport] = useState(false);
  const [confirm, setConfirm] = useState<{ open: boolean; dryRun: boolean }>({ open: false, dryRun: false });
  const paging = useKeysetPaging();

  const sweep = useMutation(FleetSweepService.method.sweep);
  const list = useQuery(
    FleetSweepService.method.listSweeps,
    { pageSize: PAGE_SIZE, pageToken: paging.token },
    {
      enabled: lacks("fleet.sweep") === null,
      placeholderData: keepPreviousData,
      refetchInterval: (q) => (sweep.isPending || q.state.data?.sweeps.some((s) => s.status === SweepStatus.RUNNING) ? RUNNING_POLL_MS : IDLE_POLL_MS),
      refetchIntervalInBackground: false,
    },
  );

  const openReport = (id: string) => {
    setParams({ sweep: id });
    setFocusReport(true);
  };
  // The opened report's heading takes focus, so keyboard and screen-reader users land on it.
  useEffect(() => {
    if (focusReport && selected) {
      headingRef.current?.focus();
      headingRef.current?.scrollIntoView({ block: "start" });
      setFocusReport(false);
    }
  }, [focusReport, selected]);

  const start = (dryRun: boolean) => {
    setConfirm({ open: false, dryRun });
    sweep.mutate(
      { dryRun },
      {
        onSuccess: (res) => {
          const run = res.sweep;
          void queryClient.invalidateQueries({ queryKey: createConnectQueryKey({ schema: FleetSweepService.method.listSweeps, cardinality: undefined }) });
          if (!run) return;
          queryClient.setQueryData(
            createConnectQueryKey({ schema: FleetSweepService.method.getSweep, input: { sweepId: run.id }, transport, cardinality: "finite" }),
            create(GetSweepResponseSchema, { sweep: run }),
          );
          openReport(run.id);
        },
      },
    );
  };

  const failure = sweep.error ? describeError(sweep.error) : null;
  const runningId = failure?.reason === "SWEEP_IN_PROGRESS" ? failure.metadata.sweepId : undefined;
  const busyReason = sweep.isPending ? "A run you started is in progress; its report opens when it finishes." : null;

  const columns: ReadonlyArray<Column<SweepRun>> = [
    {
      key: "report",
      header: "Report",
      render: (r) => (
        <Button size="small" aria-label={`Open report of sweep ${r.id}`} aria-current={r.id === selected ? "true" : undefined} onClick={() => openReport(r.id)}>
          Open report
        </Button>
      ),
    },
    { key: "started", header: "Started", sortValue: (r) => dateOf(r.startTime)?.getTime() ?? 0, render: (r) => <DateTime value={r.startTime} /> },
    { key: "run", header: "Run", render: (r) => runDescription(r) },
    { key: "status", header: "Status", sortValue: (r) => r.status, render: (r) => <StatusText run={r} /> },
    { key: "examined", header: "Examined", className: "num", render: (r) => formatCount(r.examined) },
    { key: "transitions", header: "Transitions", className: "num", render: (r) => formatCount(transitionTotal(r.transitions)) },
    { key: "conflicts", header: "Conflicts", className: "num", render: (r) => formatCount(r.conflicts) },
    { key: "failures", header: "Failures", className: "num", render: (r) => formatCount(r.failures) },
  ];

  return (
    <Page
      title="Sweeps"
      permission="fleet.sweep"
      intro="A sweep re-derives every deployment's state from its data, records each change, and tells connected boxes. It also runs on a schedule (the sweep interval setting); re-running it is idempotent."
      actions={
        <>
          <Button busy={sweep.isPending && confirm.dryRun} disabledReason={sweep.isPending && !confirm.dryRun ? busyReason : null} onClick={() => setConfirm({ open: true, dryRun: true })}>
            Dry run
          </Button>
          <Button
            variant="primary"
            busy={sweep.isPending && !confirm.dryRun}
            disabledReason={sweep.isPending && confirm.dryRun ? busyReason : null}
            onClick={() => setConfirm({ open: true, dryRun: false })}
          >
            Run sweep
          </Button>
        </>
      }
    >
      {sweep.isPending ? (
        <Notice tone="info" title={confirm.dryRun ? "Dry run in progress" : "Sweep in progress"} live>
          <p>
            <Spinner size="small" decorative /> Its report opens here when it finishes. Leaving this page does not stop it; its report is kept either way.
          </p>
        </Notice>
      ) : null}
      {sweep.error ? (
        <ErrorBanner error={sweep.error} title={runningId ? "Another run is in progress" : "The run could not start"}>
          {runningId && isUuid(runningId) ? (
            <p>
              <Button size="small" onClick={() => openReport(runningId)}>
                Open the running sweep
              </Button>
            </p>
          ) : null}
        </ErrorBanner>
      ) : null}
      {selected ? <ReportSection key={selected} sweepId={selected} headingRef={headingRef} /> : null}
      <Section title="Past runs" className="section-table">
        <div className="dense">
          <DataTable
            caption="Sweep runs, newest first"
            captionHidden
            columns={columns}
            rows={list.data?.sweeps}
            rowKey={(r) => r.id}
            loading={list.isPending}
            refreshing={list.isFetching && list.isPlaceholderData}
            error={list.error}
            onRetry={() => void list.refetch()}
            empty={<EmptyState title="No runs yet">Run a sweep or a dry run; scheduled runs appear here too.</EmptyState>}
            paging={paging.controls(list)}
          />
        </div>
      </Section>
      <ConfirmDialog
        open={confirm.open}
        title={confirm.dryRun ? "Start a dry run?" : "Run a sweep now?"}
        confirmLabel={confirm.dryRun ? "Start dry run" : "Start sweep"}
        tone="primary"
        consequence={
          confirm.dryRun ? (
            <p>A dry run derives every deployment&apos;s state and lists the changes a sweep would make. It changes nothing, and no box is told anything.</p>
          ) : (
            <>
              <p>A sweep reconciles every deployment&apos;s stored state with what its data says; boxes are told of each change.</p>
              <p>Over an unchanged fleet it changes nothing. It runs to the end even if you leave this page.</p>
            </>
          )
        }
        onConfirm={() => start(confirm.dryRun)}
        onClose={() => setConfirm((c) => ({ ...c, open: false }))}
      />
    </Page>
  );
}
