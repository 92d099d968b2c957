/**
 * Audit (licensing/audit): the hash-chained event log, newest first, filtered by action,
 * resource, actor, outcome and time, keyset-paged; each row opens to its details JSON; "Verify
 * chain" recomputes the chain and names the first broken link.
 */
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { useMutation, useQuery } from "@connectrpc/connect-query";
import { AUDIT_ACTIONS } from "@lcp/domain";
import { AuditService, Outcome, type AuditEvent } from "@lcp/proto/audit/v1/audit_service_pb";
import { keepPreviousData } from "@tanstack/react-query";
import { useEffect, useMemo, useState, type FormEvent } from "react";
import { Button } from "../components/Button.js";
import { DataTable, type Column } from "../components/DataTable.js";
import { EmptyState } from "../components/EmptyState.js";
import { ErrorBanner, Notice } from "../components/ErrorBanner.js";
import { SelectField, TextField } from "../components/Field.js";
import { Page } from "../components/Page.js";
import { RelativeTime } from "../components/RelativeTime.js";
import { FilterActions } from "../components/FilterActions.js";
import { describeError } from "../lib/errors.js";
import { ACTOR_KIND_LABELS, dateOf, formatCompactDateTime, formatDateTime, hex, isUuid, labelOf, OUTCOME_LABELS, shortId } from "../lib/format.js";
import { Link, useSearchParams } from "../lib/navigation.js";
import { deploymentPath } from "../lib/router.js";
import { useSession } from "../lib/session-context.js";
import { useKeysetPaging } from "../lib/keyset-paging.js";

const PAGE_SIZE = 100;
const RESOURCE_TYPES = ["deployment", "license", "settings", "signing_key", "appliance_ca", "sweep", "rpc", "audit_event"];
const PARAMS = ["action", "resource_type", "resource_id", "actor", "outcome", "from", "to"] as const;
type Filters = Record<(typeof PARAMS)[number], string>;
const EMPTY: Filters = { action: "", resource_type: "", resource_id: "", actor: "", outcome: "", from: "", to: "" };

const OUTCOME_OPTIONS = [
  { value: "", label: "Any outcome" },
  ...[Outcome.SUCCESS, Outcome.DENIED, Outcome.FAILURE].map((o) => ({ value: String(o), label: OUTCOME_LABELS[o] })),
];

/** A datetime-local value as a Date (the operator's time zone), or null. */
function localTime(value: string): Date | null {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$/.test(value)) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d;
}

function prettyDetails(e: AuditEvent): string {
  const text = e.detailsJson || "{}";
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

function ResourceCell({ e }: { e: AuditEvent }) {
  if (!e.resource) return <span className="muted">—</span>;
  const { type, id } = e.resource;
  return (
    <span>
      {type}
      {id ? (
        <>
          {" "}
          {type === "deployment" && isUuid(id) ? (
            <Link to={deploymentPath(id)} className="mono" title={id}>
              {shortId(id)}
            </Link>
          ) : (
            <span className="mono" title={id}>
              {shortId(id)}
            </span>
          )}
        </>
      ) : null}
    </span>
  );
}

const COLUMNS: ReadonlyArray<Column<AuditEvent>> = [
  { key: "seq", header: "Seq", sortValue: (e) => Number(e.seq), className: "nowrap", render: (e) => e.seq.toString() },
  {
    key: "when",
    header: "When",
    className: "nowrap",
    sortValue: (e) => dateOf(e.occurredAt)?.getTime() ?? 0,
    render: (e) => {
      const d = dateOf(e.occurredAt);
      return d ? (
        <time dateTime={d.toISOString()} title={formatDateTime(d, true)}>
          {formatCompactDateTime(d)}
        </time>
      ) : (
        "—"
      );
    },
  },
  { key: "action", header: "Action", sortValue: (e) => e.action, render: (e) => <code>{e.action}</code> },
  {
    key: "outcome",
    header: "Outcome",
    sortValue: (e) => labelOf(OUTCOME_LABELS, e.outcome),
    render: (e) => <span className={`outcome-${labelOf(OUTCOME_LABELS, e.outcome).toLowerCase()}`}>{labelOf(OUTCOME_LABELS, e.outcome)}</span>,
  },
  {
    key: "actor",
    header: "Actor",
    sortValue: (e) => e.actor?.id ?? "",
    render: (e) =>
      e.actor ? (
        <span>
          {e.actor.id || "—"} <span className="muted">{ACTOR_KIND_LABELS[e.actor.kind] ?? ""}</span>
        </span>
      ) : (
        "—"
      ),
  },
  { key: "resource", header: "Resource", sortValue: (e) => `${e.resource?.type ?? ""} ${e.resource?.id ?? ""}`, render: (e) => <ResourceCell e={e} /> },
];

function EventDetails({ e }: { e: AuditEvent }) {
  return (
    <div className="event-details">
      <dl className="dl">
        <div className="dl-row">
          <dt>Event ID</dt>
          <dd className="mono">{e.id}</dd>
        </div>
        <div className="dl-row">
          <dt>Resource</dt>
          <dd>
            {e.resource ? (
              <>
                {e.resource.type} <span className="mono">{e.resource.id || "—"}</span>
              </>
            ) : (
              "—"
            )}
          </dd>
        </div>
        <div className="dl-row">
          <dt>Producer</dt>
          <dd>{e.producer || "—"}</dd>
        </div>
        <div className="dl-row">
          <dt>Request ID</dt>
          <dd className="mono">{e.requestId || "—"}</dd>
        </div>
        <div className="dl-row">
          <dt>Actor roles</dt>
          <dd>{e.actor?.roles.length ? e.actor.roles.join(", ") : "—"}</dd>
        </div>
        <div className="dl-row">
          <dt>Recorded</dt>
          <dd>
            <RelativeTime value={e.recordedAt} absolute />
          </dd>
        </div>
        <div className="dl-row">
          <dt>Hash</dt>
          <dd className="mono">{e.hash.length ? hex(e.hash) : "—"}</dd>
        </div>
        <div className="dl-row">
          <dt>Previous hash</dt>
          <dd className="mono">{e.prevHash.length ? hex(e.prevHash) : "—"}</dd>
        </div>
      </dl>
      <h3 className="subhead">Details</h3>
      <pre aria-label={`Details of event ${e.seq.toString()}`}>{prettyDetails(e)}</pre>
    </div>
  );
}

function VerifyChain() {
  const verify = useMutation(AuditService.method.verifyChain);
  const r = verify.data;
  return (
    <div className="verify">
      <Button busy={verify.isPending} onClick={() => verify.mutate({})}>
        Verify chain
      </Button>
      <div role="status" className="verify-result">
        {r ? (
          r.ok ? (
            <Notice tone="success" title="Chain intact">
              <p>
                {r.checked.toString()} events checked, up to seq {r.headSeq.toString()}: every hash and link matches.
              </p>
            </Notice>
          ) : (
            <div className="banner banner-error">
              <p className="banner-title">Chain broken at seq {r.firstBrokenSeq.toString()}</p>
              <p>
                {r.reason || "The hash or link does not match"}. {r.checked.toString()} events checked (head seq {r.headSeq.toString()}).
              </p>
            </div>
          )
        ) : null}
      </div>
      {verify.error ? <ErrorBanner error={verify.error} title="Could not verify the chain" /> : null}
    </div>
  );
}

function FilterForm({ filters, onApply, fieldErrors }: { filters: Filters; onApply: (f: Filters) => void; fieldErrors: Readonly<Record<string, string>> }) {
  const [draft, setDraft] = useState(filters);
  useEffect(() => setDraft(filters), [filters]);
  const set = (k: keyof Filters) => (v: string) => setDraft({ ...draft, [k]: v });
  const badRange = draft.from && draft.to && localTime(draft.from) && localTime(draft.to) && localTime(draft.from)! >= localTime(draft.to)! ? "“To” must be after “From”." : null;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (badRange) return;
    onApply({ ...draft, action: draft.action.trim(), resource_id: draft.resource_id.trim(), actor: draft.actor.trim() });
  };
  return (
    <form className="filters filters-wide" aria-label="Filter events" onSubmit={submit} noValidate>
      <TextField label="Action" value={draft.action} onChange={set("action")} suggestions={AUDIT_ACTIONS} maxLength={64} mono error={fieldErrors.action} />
      <SelectField
        label="Resource type"
        value={draft.resource_type}
        onChange={set("resource_type")}
        options={[{ value: "", label: "Any type" }, ...RESOURCE_TYPES.map((t) => ({ value: t, label: t }))]}
        error={fieldErrors.resource_type}
      />
      <TextField label="Resource ID" value={draft.resource_id} onChange={set("resource_id")} maxLength={128} mono spellCheck={false} error={fieldErrors.resource_id} />
      <TextField label="Actor" value={draft.actor} onChange={set("actor")} maxLength={256} hint="Subject, service or deployment ID." error={fieldErrors.actor_id} />
      <SelectField label="Outcome" value={draft.outcome} onChange={set("outcome")} options={OUTCOME_OPTIONS} error={fieldErrors.outcome} />
      <TextField label="From" type="datetime-local" value={draft.from} onChange={set("from")} error={fieldErrors.start_time} />
      <TextField label="To" type="datetime-local" value={draft.to} onChange={set("to")} error={badRange ?? fieldErrors.end_time} />
      <FilterActions
        onClear={() => {
          setDraft(EMPTY);
          onApply(EMPTY);
        }}
      />
    </form>
  );
}

/** The audit screen; see the module comment. */
export function AuditScreen() {
  const { lacks } = useSession();
  const [params, setParams] = useSearchParams();
  const filters = useMemo(() => Object.fromEntries(PARAMS.map((k) => [k, params.get(k) ?? ""])) as Filters, [params]);
  const filterKey = JSON.stringify(filters);
  const paging = useKeysetPaging(filterKey);
  const outcome = Number(filters.outcome);
  const from = localTime(filters.from);
  const to = localTime(filters.to);
  const query = useQuery(
    AuditService.method.listEvents,
    {
      action: filters.action,
      resourceType: filters.resource_type,
      resourceId: filters.resource_id,
      actorId: filters.actor,
      outcome: [Outcome.SUCCESS, Outcome.DENIED, Outcome.FAILURE].includes(outcome) ? (outcome as Outcome) : Outcome.UNSPECIFIED,
      ...(from ? { startTime: timestampFromDate(from) } : {}),
      ...(to ? { endTime: timestampFromDate(to) } : {}),
      pageSize: PAGE_SIZE,
      pageToken: paging.token,
    },
    { placeholderData: keepPreviousData, enabled: lacks("audit.read") === null },
  );
  const fieldErrors = query.error ? describeError(query.error).fieldErrors : {};
  const filtered = filterKey !== JSON.stringify(EMPTY);
  return (
    <Page title="Audit" permission="audit.read" intro="Every change and refusal, newest first, in a hash-chained log.">
      <VerifyChain />
      <FilterForm filters={filters} fieldErrors={fieldErrors} onApply={(f) => setParams({ ...f })} />
      <DataTable
        caption="Audit events"
        columns={COLUMNS}
        rows={query.data?.events}
        rowKey={(e) => e.id}
        loading={query.isPending}
        refreshing={query.isFetching}
        error={query.error}
        onRetry={() => void query.refetch()}
        renderExpanded={(e) => <EventDetails e={e} />}
        expandLabel={(e) => `Details of event ${e.seq.toString()}`}
        empty={filtered ? <EmptyState title="No events match these filters">Clear the filters to see every event.</EmptyState> : <EmptyState title="No events yet" />}
        paging={paging.controls(query)}
      />
    </Page>
  );
}
