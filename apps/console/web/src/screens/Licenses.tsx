/**
 * Licenses (licensing, `GET /licenses`): every licence with its deployment's name, customer and
 * derived state, filtered by state, licence status, customer or deployment, keyset-paged; and
 * "Find by ID" for a licence or deployment id, which opens the deployment.
 */
import { createClient } from "@connectrpc/connect";
import { useQuery, useTransport } from "@connectrpc/connect-query";
import { LicensingService } from "@lcp/proto/licensing/v1/licensing_service_pb";
import { Connectivity, DeploymentState, LicenseStatus, type Deployment, type License } from "@lcp/proto/licensing/v1/types_pb";
import { keepPreviousData } from "@tanstack/react-query";
import { useEffect, useMemo, useState, type FormEvent } from "react";
import { ActionLink } from "../components/ActionLink.js";
import { Button } from "../components/Button.js";
import { DataTable, type Column } from "../components/DataTable.js";
import { EmptyState } from "../components/EmptyState.js";
import { ErrorBanner } from "../components/ErrorBanner.js";
import { SelectField, TextField } from "../components/Field.js";
import { Page } from "../components/Page.js";
import { DateTime, RelativeTime } from "../components/RelativeTime.js";
import { StateBadge, stateText } from "../components/StateBadge.js";
import { FilterActions } from "../components/FilterActions.js";
import { describeError, isNotFound } from "../lib/errors.js";
import { dateOf, FILTER_STATES, isUuid, labelOf, LICENSE_STATUS_LABELS, shortId, STATE_LABELS } from "../lib/format.js";
import { Link, navigate, useSearchParams } from "../lib/navigation.js";
import { deploymentPath, pathFor } from "../lib/router.js";
import { useSession } from "../lib/session-context.js";
import { useKeysetPaging } from "../lib/keyset-paging.js";

const PAGE_SIZE = 50;

interface Row {
  readonly license: License;
  readonly deployment: Deployment | undefined;
}

const STATE_OPTIONS = [{ value: "", label: "Any state" }, ...FILTER_STATES.map((s) => ({ value: String(s), label: STATE_LABELS[s] }))];
const STATUS_OPTIONS = [
  { value: "", label: "Any status" },
  ...[LicenseStatus.ISSUED, LicenseStatus.ACTIVATED, LicenseStatus.REVOKED, LicenseStatus.EXPIRED, LicenseStatus.SUPERSEDED].map((s) => ({
    value: String(s),
    label: LICENSE_STATUS_LABELS[s],
  })),
];

interface Filters {
  readonly state: string;
  readonly status: string;
  readonly customer: string;
  readonly deployment: string;
}

function enumParam<E extends number>(value: string, allowed: readonly E[]): E | null {
  const n = Number(value);
  return value !== "" && (allowed as readonly number[]).includes(n) ? (n as E) : null;
}

const COLUMNS: ReadonlyArray<Column<Row>> = [
  {
    key: "deployment",
    header: "Deployment",
    sortValue: (r) => r.deployment?.name ?? "",
    render: (r) => (
      <>
        <Link to={deploymentPath(r.license.deploymentId)} className="strong-link">
          {r.deployment?.name || shortId(r.license.deploymentId)}
        </Link>
        {r.deployment?.connectivity === Connectivity.AIR_GAPPED ? <span className="chip chip-inline">Air-gapped</span> : null}
        <span className="cell-sub mono" title={`Licence ${r.license.id}`}>
          licence {shortId(r.license.id)}
        </span>
      </>
    ),
  },
  { key: "customer", header: "Customer", sortValue: (r) => r.deployment?.customer ?? "", render: (r) => r.deployment?.customer ?? <span className="muted">—</span> },
  {
    key: "state",
    header: "State",
    sortValue: (r) => (r.deployment ? stateText(r.deployment.state, r.deployment.lockReason) : ""),
    render: (r) => (r.deployment ? <StateBadge state={r.deployment.state} lockReason={r.deployment.lockReason} /> : <span className="muted">—</span>),
  },
  { key: "status", header: "Licence status", sortValue: (r) => labelOf(LICENSE_STATUS_LABELS, r.license.status), render: (r) => labelOf(LICENSE_STATUS_LABELS, r.license.status) },
  { key: "expires", header: "Expires", sortValue: (r) => dateOf(r.license.expireTime)?.getTime() ?? 0, className: "nowrap", render: (r) => <DateTime value={r.license.expireTime} dateOnly /> },
  {
    key: "seen",
    header: "Last seen",
    sortValue: (r) => dateOf(r.deployment?.lastSeenTime)?.getTime() ?? 0,
    className: "nowrap",
    render: (r) => <RelativeTime value={r.deployment?.lastSeenTime} fallback="never" />,
  },
];

function FindById() {
  const transport = useTransport();
  const [id, setId] = useState("");
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (busy) return;
    const value = id.trim().toLowerCase();
    setError(null);
    if (!isUuid(value)) {
      setProblem("Enter a licence or deployment ID (a UUID such as 01890a5d-ac96-774b-bcce-b302099a8057).");
      return;
    }
    setProblem(null);
    setBusy(true);
    const client = createClient(LicensingService, transport);
    try {
      try {
        const { license } = await client.getLicense({ licenseId: value });
        if (license) {
          navigate(deploymentPath(license.deploymentId));
          return;
        }
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
      try {
        const { deployment } = await client.getDeployment({ deploymentId: value });
        if (deployment) {
          navigate(deploymentPath(deployment.id));
          return;
        }
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
      setProblem(`No licence or deployment has the ID ${value}.`);
    } catch (err) {
      const d = describeError(err);
      if (d.fieldErrors.license_id || d.fieldErrors.deployment_id) setProblem(d.fieldErrors.license_id ?? d.fieldErrors.deployment_id ?? null);
      else setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="find-form" role="search" aria-label="Find a licence or deployment" onSubmit={(e) => void submit(e)} noValidate>
      <TextField label="Find by ID" hint="A licence or deployment ID opens its deployment." value={id} onChange={setId} mono spellCheck={false} error={problem} maxLength={64} />
      <Button type="submit" busy={busy}>
        Find
      </Button>
      {error ? <ErrorBanner error={error} title="Could not look the ID up" /> : null}
    </form>
  );
}

function FilterForm({ filters, onApply, fieldErrors }: { filters: Filters; onApply: (f: Filters) => void; fieldErrors: Readonly<Record<string, string>> }) {
  const [draft, setDraft] = useState(filters);
  useEffect(() => setDraft(filters), [filters]);
  const empty: Filters = { state: "", status: "", customer: "", deployment: "" };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    onApply({ ...draft, customer: draft.customer.trim(), deployment: draft.deployment.trim().toLowerCase() });
  };
  return (
    <form className="filters" aria-label="Filter licences" onSubmit={submit} noValidate>
      <SelectField label="State" value={draft.state} options={STATE_OPTIONS} onChange={(state) => setDraft({ ...draft, state })} />
      <SelectField label="Licence status" value={draft.status} options={STATUS_OPTIONS} onChange={(status) => setDraft({ ...draft, status })} />
      <TextField label="Customer" value={draft.customer} onChange={(customer) => setDraft({ ...draft, customer })} maxLength={200} error={fieldErrors.customer} />
      <TextField
        label="Deployment ID"
        value={draft.deployment}
        onChange={(deployment) => setDraft({ ...draft, deployment })}
        mono
        spellCheck={false}
        maxLength={64}
        error={fieldErrors.deployment_id}
      />
      <FilterActions
        onClear={() => {
          setDraft(empty);
          onApply(empty);
        }}
      />
    </form>
  );
}

/** The Licenses screen; see the module comment. */
export function LicensesScreen() {
  const { lacks } = useSession();
  const [params, setParams] = useSearchParams();
  const filters: Filters = useMemo(
    () => ({ state: params.get("state") ?? "", status: params.get("status") ?? "", customer: params.get("customer") ?? "", deployment: params.get("deployment") ?? "" }),
    [params],
  );
  const filterKey = JSON.stringify(filters);
  // Keyset paging: the token of the page shown, and its number; a new filter starts again.
  const paging = useKeysetPaging(filterKey);

  const state = enumParam(filters.state, FILTER_STATES);
  const status = enumParam(filters.status, [LicenseStatus.ISSUED, LicenseStatus.ACTIVATED, LicenseStatus.REVOKED, LicenseStatus.EXPIRED, LicenseStatus.SUPERSEDED]);
  const query = useQuery(
    LicensingService.method.listLicenses,
    {
      deploymentStates: state === null ? [] : [state],
      statuses: status === null ? [] : [status],
      customer: filters.customer,
      deploymentId: filters.deployment,
      pageSize: PAGE_SIZE,
      pageToken: paging.token,
    },
    { placeholderData: keepPreviousData, enabled: lacks("license.read") === null },
  );
  const rows = useMemo<Row[] | undefined>(() => {
    if (!query.data) return undefined;
    const byId = new Map(query.data.deployments.map((d) => [d.id, d]));
    return query.data.licenses.map((license) => ({ license, deployment: byId.get(license.deploymentId) }));
  }, [query.data]);
  const fieldErrors = query.error ? describeError(query.error).fieldErrors : {};
  const filtered = filterKey !== JSON.stringify({ state: "", status: "", customer: "", deployment: "" });
  const issueReason = lacks("license.issue");

  return (
    <Page
      title="Licenses"
      permission="license.read"
      actions={
        <ActionLink to={pathFor({ name: "license-new" })} variant="primary" disabledReason={issueReason}>
          New license
        </ActionLink>
      }
    >
      <div className="toolbar">
        <FilterForm
          filters={filters}
          fieldErrors={fieldErrors}
          onApply={(f) => setParams({ state: f.state, status: f.status, customer: f.customer, deployment: f.deployment })}
        />
        <FindById />
      </div>
      <DataTable
        caption="Licences"
        columns={COLUMNS}
        rows={rows}
        rowKey={(r) => r.license.id}
        loading={query.isPending}
        refreshing={query.isFetching}
        error={query.error}
        onRetry={() => void query.refetch()}
        empty={
          filtered ? (
            <EmptyState title="No licences match these filters">Clear the filters to see every licence.</EmptyState>
          ) : (
            <EmptyState
              title="No licences yet"
              action={
                issueReason ? null : (
                  <Link to={pathFor({ name: "license-new" })} className="btn btn-primary">
                    Issue the first licence
                  </Link>
                )
              }
            >
              A licence appears here once a deployment is provisioned with one, or one is issued.
            </EmptyState>
          )
        }
        paging={paging.controls(query)}
      />
    </Page>
  );
}
