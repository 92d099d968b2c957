/**
 * One deployment (licensing/deployments/:id): its derived state and why, its licence,
 * certificate, lease and heartbeat, its audit timeline, and the operator's levers — suspend or
 * restore the subscription, revoke, rebind, send a directive, switch between online and
 * air-gapped — each behind a dialog that says what will happen to the box.
 */
import { durationFromMs, durationMs } from "@bufbuild/protobuf/wkt";
import { useMutation, useQuery } from "@connectrpc/connect-query";
import { AuditService, type AuditEvent } from "@lcp/proto/audit/v1/audit_service_pb";
import { LicensingService, type GetDeploymentResponse } from "@lcp/proto/licensing/v1/licensing_service_pb";
import { Connectivity, DirectiveType, LicenseStatus, SubscriptionStatus, type Deployment, type License } from "@lcp/proto/licensing/v1/types_pb";
import { MAX_REASON_LENGTH } from "@lcp/domain";
import { useQueryClient } from "@tanstack/react-query";
import { useMemo, useState, type ReactNode } from "react";
import { ActionLink } from "../components/ActionLink.js";
import { Button } from "../components/Button.js";
import { ConfirmDialog } from "../components/ConfirmDialog.js";
import { CopyButton } from "../components/CopyButton.js";
import { DataTable, type Column } from "../components/DataTable.js";
import { EmptyState } from "../components/EmptyState.js";
import { ErrorBanner, Notice } from "../components/ErrorBanner.js";
import { Facts } from "../components/Facts.js";
import { DurationField, SelectField, TextAreaField, TextField } from "../components/Field.js";
import { Page, Section } from "../components/Page.js";
import { DateTime, RelativeTime } from "../components/RelativeTime.js";
import { Skeleton } from "../components/Spinner.js";
import { StateBadge } from "../components/StateBadge.js";
import { durationValueFromMs, durationValueToMs, formatElapsed, type DurationValue } from "../lib/duration.js";
import { describeError } from "../lib/errors.js";
import { ACTOR_KIND_LABELS, CONNECTIVITY_LABELS, dateOf, DIRECTIVE_LABELS, KIND_LABELS, labelOf, LICENSE_STATUS_LABELS, OUTCOME_LABELS, SUBSCRIPTION_LABELS } from "../lib/format.js";
import { Link } from "../lib/navigation.js";
import { pathFor } from "../lib/router.js";
import { useSession } from "../lib/session-context.js";
import { useNow } from "../lib/use-now.js";
import { explainState } from "../lib/verdict.js";

type ActionName = "suspend" | "restore" | "revoke" | "rebind" | "directive" | "connectivity";

function Id({ value, label }: { value: string; label: string }) {
  return (
    <span className="id-copy">
      <span className="mono">{value}</span> <CopyButton text={value} label={`Copy ${label}`} />
    </span>
  );
}

function Verdict({ data }: { data: GetDeploymentResponse }) {
  const now = useNow();
  const settings = useQuery(LicensingService.method.getSettings, {});
  const d = data.deployment!;
  const grace = settings.data?.settings?.graceWindow;
  const text = explainState(
    {
      state: d.state,
      lockReason: d.lockReason,
      subscription: d.subscriptionStatus,
      licenseStatus: data.license ? data.license.status : null,
      licenseExpiresAt: dateOf(data.license?.expireTime)?.getTime() ?? null,
      lastSeenAt: dateOf(d.lastSeenTime)?.getTime() ?? null,
      graceWindowMs: grace ? durationMs(grace) : null,
      airGapped: d.connectivity === Connectivity.AIR_GAPPED,
    },
    now,
  );
  return (
    <Section title="State">
      <p className="verdict">
        <StateBadge state={d.state} lockReason={d.lockReason} /> <span>{text}</span>
      </p>
      <Facts
        items={[
          ["Subscription", labelOf(SUBSCRIPTION_LABELS, d.subscriptionStatus)],
          ["Customer", d.customer || "—"],
          ["Kind", labelOf(KIND_LABELS, d.kind)],
          ["Connectivity", labelOf(CONNECTIVITY_LABELS, d.connectivity)],
          ["Deployment ID", <Id key="id" value={d.id} label="deployment ID" />],
          ["Last seen", <RelativeTime key="seen" value={d.lastSeenTime} fallback="never" absolute />],
          ["State since", <RelativeTime key="since" value={d.stateChangeTime} absolute />],
          ["Created", <DateTime key="created" value={d.createTime} />],
        ]}
      />
    </Section>
  );
}

function LicenseSection({ license, deployment }: { license: License | undefined; deployment: Deployment }) {
  const { can, lacks } = useSession();
  const issueReason = lacks("license.issue");
  const revoked = license?.status === LicenseStatus.REVOKED;
  const newLicense = (
    <ActionLink
      to={`${pathFor({ name: "license-new" })}?deployment=${encodeURIComponent(deployment.id)}`}
      size="small"
      disabledReason={issueReason ?? (revoked ? "a revoked deployment is issued nothing: replacement hardware gets a new deployment" : null)}
    >
      Issue a new licence
    </ActionLink>
  );
  if (!license) {
    return (
      <Section title="Licence" actions={newLicense}>
        <EmptyState title="No licence issued">The deployment stays pending until a licence is issued and a box activates it.</EmptyState>
      </Section>
    );
  }
  const hiddenForRole = "shown only to roles that may issue licences";
  return (
    <Section title="Licence" actions={newLicense}>
      <Facts
        items={[
          ["Status", labelOf(LICENSE_STATUS_LABELS, license.status)],
          ["Licence ID", <Id key="id" value={license.id} label="licence ID" />],
          [
            "Entitlements",
            license.entitlements.length > 0 ? (
              <ul className="chips" key="ent">
                {license.entitlements.map((e) => (
                  <li key={e} className="chip">
                    {e}
                  </li>
                ))}
              </ul>
            ) : (
              <span className="muted">none</span>
            ),
          ],
          ["Issued", <DateTime key="iss" value={license.issueTime} />],
          ["Expires", <DateTime key="exp" value={license.expireTime} />],
          ["Activated", <DateTime key="act" value={license.activateTime} fallback="not yet" />],
          ...(license.revokeTime ? ([["Revoked", <span key="rev">
            <DateTime value={license.revokeTime} />
            {license.revokeReason ? ` — ${license.revokeReason}` : ""}
          </span>]] as Array<[string, ReactNode]>) : []),
          ["Signing key (kid)", license.kid ? <span className="mono">{license.kid}</span> : "—"],
          [
            "Fingerprint hash",
            license.fingerprintHash ? (
              <span className="mono">{license.fingerprintHash}</span>
            ) : (
              <span className="muted">{can("license.issue") ? "not bound to a box" : hiddenForRole}</span>
            ),
          ],
        ]}
      />
      {license.token ? (
        <div className="token">
          <TextAreaField label="Licence token" value={license.token} readOnly mono rows={4} hint="A signed token: the box activates with it. Treat it as a credential." />
          <CopyButton text={license.token} label="Copy token" />
        </div>
      ) : null}
    </Section>
  );
}

function CertificateSection({ data }: { data: GetDeploymentResponse }) {
  const c = data.certificate;
  return (
    <Section title="Certificate">
      {c ? (
        <Facts
          items={[
            ["Serial", <span key="s" className="mono">{c.serial}</span>],
            ["Valid from", <DateTime key="nb" value={c.notBefore} />],
            ["Valid until", <DateTime key="na" value={c.notAfter} />],
            ["Fingerprint hash", c.fingerprintHash ? <span className="mono">{c.fingerprintHash}</span> : "—"],
            ["Revoked", <DateTime key="r" value={c.revokeTime} fallback="no" />],
          ]}
        />
      ) : (
        <p className="muted">No client certificate yet: one is issued when a box activates.</p>
      )}
    </Section>
  );
}

function HeartbeatSection({ data }: { data: GetDeploymentResponse }) {
  const h = data.heartbeat;
  const airGapped = data.deployment?.connectivity === Connectivity.AIR_GAPPED;
  return (
    <Section title="Heartbeat and lease">
      {airGapped ? (
        <p className="muted">
          This box is air-gapped: it never heartbeats, and its lease is renewed by file on the <Link to={pathFor({ name: "offline" })}>Offline</Link> page.
        </p>
      ) : null}
      {h ? (
        <Facts
          items={[
            ["Connected", h.connected ? `Yes${h.replica ? `, to ${h.replica}` : ""}` : "No"],
            ["Last beat", <RelativeTime key="seen" value={h.lastSeenTime} fallback="never" absolute />],
            ["Lag", h.lag ? formatElapsed(durationMs(h.lag)) : "—"],
            ["Agent", h.agentVersion || "—"],
            ["Lease sequence", h.leaseSeq.toString()],
            ["Directives not yet acknowledged", String(h.pendingDirectives)],
          ]}
        />
      ) : (
        <p className="muted">{airGapped ? "No lease answered yet: the box has not activated." : "No heartbeat yet: the box has not activated."}</p>
      )}
    </Section>
  );
}

function eventTime(e: AuditEvent): number {
  return dateOf(e.occurredAt)?.getTime() ?? 0;
}

/** A one-line summary of an event's details: its reason, or its from/to states. */
function detailSummary(e: AuditEvent): string {
  try {
    const d = JSON.parse(e.detailsJson || "{}") as Record<string, unknown>;
    const parts: string[] = [];
    if (typeof d.reason === "string") parts.push(d.reason);
    if (typeof d.from === "string" && typeof d.to === "string") parts.push(`${d.from} → ${d.to}`);
    return parts.join("; ").slice(0, 200);
  } catch {
    return "";
  }
}

const TIMELINE_COLUMNS: ReadonlyArray<Column<AuditEvent>> = [
  { key: "when", header: "When", className: "nowrap", render: (e) => <RelativeTime value={e.occurredAt} /> },
  { key: "action", header: "Action", render: (e) => <code>{e.action}</code> },
  {
    key: "outcome",
    header: "Outcome",
    render: (e) => <span className={`outcome-${labelOf(OUTCOME_LABELS, e.outcome).toLowerCase()}`}>{labelOf(OUTCOME_LABELS, e.outcome)}</span>,
  },
  { key: "actor", header: "Actor", render: (e) => (e.actor ? `${e.actor.id}${e.actor.kind ? ` (${ACTOR_KIND_LABELS[e.actor.kind] ?? ""})` : ""}` : "—") },
  { key: "details", header: "Details", render: (e) => detailSummary(e) || <span className="muted">—</span> },
];

const TIMELINE_PAGE = 50;

function Timeline({ deploymentId, licenseId }: { deploymentId: string; licenseId: string }) {
  const { lacks } = useSession();
  const missing = lacks("audit.read");
  const deploymentEvents = useQuery(AuditService.method.listEvents, { resourceType: "deployment", resourceId: deploymentId, pageSize: TIMELINE_PAGE }, { enabled: !missing });
  const licenseEvents = useQuery(AuditService.method.listEvents, { resourceType: "license", resourceId: licenseId, pageSize: TIMELINE_PAGE }, { enabled: !missing && licenseId !== "" });
  const rows = useMemo(() => {
    if (!deploymentEvents.data) return undefined;
    if (licenseId !== "" && !licenseEvents.data && !licenseEvents.error) return undefined;
    const all = [...deploymentEvents.data.events, ...(licenseEvents.data?.events ?? [])];
    const unique = [...new Map(all.map((e) => [e.id, e])).values()];
    return unique.sort((a, b) => eventTime(b) - eventTime(a) || Number(b.seq - a.seq));
  }, [deploymentEvents.data, licenseEvents.data, licenseEvents.error, licenseId]);
  if (missing) {
    return (
      <Section title="Audit timeline">
        <p className="muted">The audit timeline is hidden: reading the audit trail {missing}.</p>
      </Section>
    );
  }
  const more = Boolean(deploymentEvents.data?.nextPageToken || licenseEvents.data?.nextPageToken);
  return (
    <Section title="Audit timeline">
      <DataTable
        caption="Events of this deployment and its licence"
        captionHidden
        columns={TIMELINE_COLUMNS}
        rows={rows}
        rowKey={(e) => e.id}
        loading={deploymentEvents.isPending}
        error={deploymentEvents.error ?? licenseEvents.error}
        onRetry={() => {
          void deploymentEvents.refetch();
          void licenseEvents.refetch();
        }}
        empty={<EmptyState title="No events yet" />}
      />
      <p className="muted">
        {more ? `The newest ${TIMELINE_PAGE} events of the deployment and of its licence, newest first. ` : "Events of the deployment and of its current licence, newest first. "}
        <Link to={`${pathFor({ name: "audit" })}?resource_id=${encodeURIComponent(deploymentId)}`}>Open the deployment in Audit</Link>
      </p>
    </Section>
  );
}

const DIRECTIVE_CHOICES = [DirectiveType.REFRESH_KEYS, DirectiveType.SET_INTERVAL, DirectiveType.RENEW_LEASE, DirectiveType.RENEW_CERTIFICATE] as const;

function directiveEffect(type: DirectiveType, name: string, interval: string): string {
  switch (type) {
    case DirectiveType.REFRESH_KEYS:
      return `The box ${name} is sent the current set of signing keys (JWKS) and verifies its licence and leases against it from then on.`;
    case DirectiveType.SET_INTERVAL:
      return `The box ${name} is told to send a heartbeat every ${interval || "…"} instead of the interval in the settings.`;
    case DirectiveType.RENEW_LEASE:
      return `The box ${name} is sent a freshly signed lease, restarting its offline grace window.`;
    case DirectiveType.RENEW_CERTIFICATE:
      return `The box ${name} is sent a new client certificate for its heartbeat stream.`;
    default:
      return "";
  }
}

function Actions({ data }: { data: GetDeploymentResponse }) {
  const { lacks } = useSession();
  const queryClient = useQueryClient();
  const d = data.deployment!;
  const license = data.license;
  const name = d.name || d.id;
  const [open, setOpen] = useState<ActionName | null>(null);
  const [reason, setReason] = useState("");
  const [fingerprint, setFingerprint] = useState("");
  const [directive, setDirective] = useState<DirectiveType>(DirectiveType.REFRESH_KEYS);
  const [interval, setIntervalValue] = useState<DurationValue>(durationValueFromMs(60_000));
  const [done, setDone] = useState<string | null>(null);

  const after = (message: string) => {
    setOpen(null);
    setDone(message);
    void queryClient.invalidateQueries();
  };
  const subscription = useMutation(LicensingService.method.setSubscriptionStatus, {
    onSuccess: (res) => after(res.deployment?.subscriptionStatus === SubscriptionStatus.INVALID ? `Subscription of ${name} suspended.` : `Subscription of ${name} restored.`),
  });
  const revoke = useMutation(LicensingService.method.revokeLicense, { onSuccess: () => after(`Licence of ${name} revoked.`) });
  const rebind = useMutation(LicensingService.method.rebindLicense, { onSuccess: () => after(`Licence of ${name} rebound; the deployment waits for the new box to activate.`) });
  const send = useMutation(LicensingService.method.sendDirective, {
    onSuccess: (res) =>
      after(res.delivered ? `Directive sent: ${name} received it now.` : `Directive queued: ${name} is not connected and receives it when it reconnects.`),
  });
  const airGapped = d.connectivity === Connectivity.AIR_GAPPED;
  const connectivity = useMutation(LicensingService.method.setConnectivity, {
    onSuccess: (res) => after(res.deployment?.connectivity === Connectivity.AIR_GAPPED ? `${name} is now air-gapped: answer its request files on the Offline page.` : `${name} is now online: it is expected to heartbeat.`),
  });
  const settings = useQuery(LicensingService.method.getSettings, {});
  const airGappedLease = settings.data?.settings?.airGappedLease;
  const mutations = { suspend: subscription, restore: subscription, revoke, rebind, directive: send, connectivity } as const;

  const start = (action: ActionName) => {
    setReason("");
    setFingerprint("");
    setDone(null);
    mutations[action].reset();
    setOpen(action);
  };
  const current = open ? mutations[open] : null;
  const fieldErrors = current?.error ? describeError(current.error).fieldErrors : {};
  const reasonField = (required: boolean) => (
    <TextAreaField
      label="Reason"
      required={required}
      value={reason}
      onChange={setReason}
      maxLength={MAX_REASON_LENGTH}
      rows={2}
      hint="Recorded in the audit trail."
      error={fieldErrors.reason}
    />
  );

  const noLicense = !license ? "there is no licence" : license.status === LicenseStatus.REVOKED ? "the licence is already revoked" : null;
  const suspended = d.subscriptionStatus === SubscriptionStatus.INVALID;
  const intervalMs = durationValueToMs(interval);

  return (
    <Section title="Actions">
      {done ? (
        <Notice tone="success" live>
          <p>{done}</p>
        </Notice>
      ) : null}
      <div className="actions-row">
        {suspended ? (
          <Button variant="primary" disabledReason={lacks("subscription.manage")} onClick={() => start("restore")}>
            Restore subscription
          </Button>
        ) : (
          <Button disabledReason={lacks("subscription.manage")} onClick={() => start("suspend")}>
            Suspend subscription
          </Button>
        )}
        <Button disabledReason={lacks("license.revoke") ?? noLicense} onClick={() => start("rebind")}>
          Rebind licence
        </Button>
        <Button disabledReason={lacks("directive.send")} onClick={() => start("directive")}>
          Send directive
        </Button>
        <Button disabledReason={lacks("license.revoke")} onClick={() => start("connectivity")}>
          {airGapped ? "Switch to online" : "Switch to air-gapped"}
        </Button>
        <Button variant="danger" disabledReason={lacks("license.revoke") ?? noLicense} onClick={() => start("revoke")}>
          Revoke licence
        </Button>
      </div>

      <ConfirmDialog
        open={open === "suspend"}
        title={`Suspend the subscription of ${name}?`}
        consequence={
          <p>
            The subscription becomes invalid and the deployment is suspended. The box <strong>{name}</strong> is told to suspend at once if it is connected (otherwise when it
            reconnects): it stays connected but stops its licensed work until the subscription is restored.
          </p>
        }
        confirmLabel="Suspend subscription"
        busy={subscription.isPending}
        error={subscription.error}
        onClose={() => setOpen(null)}
        onConfirm={() => subscription.mutate({ deploymentId: d.id, status: SubscriptionStatus.INVALID, reason })}
      >
        {reasonField(false)}
      </ConfirmDialog>

      <ConfirmDialog
        open={open === "restore"}
        title={`Restore the subscription of ${name}?`}
        tone="primary"
        consequence={
          <p>
            The subscription becomes valid again. The box <strong>{name}</strong> is told to reactivate and gets a fresh lease if it is connected (otherwise when it reconnects).
          </p>
        }
        confirmLabel="Restore subscription"
        busy={subscription.isPending}
        error={subscription.error}
        onClose={() => setOpen(null)}
        onConfirm={() => subscription.mutate({ deploymentId: d.id, status: SubscriptionStatus.VALID, reason })}
      >
        {reasonField(false)}
      </ConfirmDialog>

      <ConfirmDialog
        open={open === "revoke"}
        title={`Revoke the licence of ${name}?`}
        consequence={
          <>
            <p>
              The box <strong>{name}</strong> will be told to lock at once if it is connected, and no box can ever activate this licence again.
            </p>
            <p>This cannot be undone: replacement hardware for this site needs a new deployment.</p>
          </>
        }
        confirmLabel="Revoke licence"
        confirmPhrase={name}
        busy={revoke.isPending}
        error={revoke.error}
        onClose={() => setOpen(null)}
        onConfirm={() => revoke.mutate({ licenseId: license?.id ?? "", reason })}
      >
        {reasonField(true)}
      </ConfirmDialog>

      <ConfirmDialog
        open={open === "rebind"}
        title={`Rebind the licence of ${name}?`}
        consequence={
          <>
            <p>
              The licence moves to the new fingerprint. The box that holds it now is told to lock if it is still connected and its certificates are refused from now on; the deployment is
              pending until the new box activates.
            </p>
            <p>Leave the fingerprint empty to unbind: the next box to activate binds.</p>
          </>
        }
        confirmLabel="Rebind licence"
        busy={rebind.isPending}
        error={rebind.error}
        onClose={() => setOpen(null)}
        onConfirm={() => rebind.mutate({ licenseId: license?.id ?? "", newFingerprint: fingerprint.trim(), reason })}
      >
        <TextField label="New fingerprint" value={fingerprint} onChange={setFingerprint} mono spellCheck={false} maxLength={512} hint="The replacement box's hardware fingerprint, as its installer reports it." error={fieldErrors.new_fingerprint} />
        {reasonField(true)}
      </ConfirmDialog>

      <ConfirmDialog
        open={open === "connectivity"}
        title={airGapped ? `Switch ${name} to online?` : `Switch ${name} to air-gapped?`}
        tone="primary"
        consequence={
          airGapped ? (
            <p>
              The box <strong>{name}</strong> is expected to heartbeat from now on: silence longer than the heartbeat timeout moves it to grace, and past the grace window it locks.
              Its lease sequence carries on.
            </p>
          ) : (
            <>
              <p>
                The box <strong>{name}</strong> is expected never to reach the control plane from now on: it activates and renews by signed files answered on the Offline page,
                and its health is its lease{airGappedLease ? ` (${formatElapsed(durationMs(airGappedLease))})` : ""}, not its heartbeats.
              </p>
              <p>A revoke reaches an air-gapped box only with its next renewal file: until then it runs on the lease it holds.</p>
            </>
          )
        }
        confirmLabel={airGapped ? "Switch to online" : "Switch to air-gapped"}
        busy={connectivity.isPending}
        error={connectivity.error}
        onClose={() => setOpen(null)}
        onConfirm={() => connectivity.mutate({ deploymentId: d.id, connectivity: airGapped ? Connectivity.ONLINE : Connectivity.AIR_GAPPED, reason })}
      >
        {reasonField(true)}
      </ConfirmDialog>

      <ConfirmDialog
        open={open === "directive"}
        title={`Send a directive to ${name}?`}
        tone="primary"
        consequence={
          <p>
            {directiveEffect(directive, name, intervalMs === null ? "" : formatElapsed(intervalMs))} If the box is connected it receives it at once; otherwise when it reconnects.
          </p>
        }
        confirmLabel="Send directive"
        busy={send.isPending}
        error={send.error}
        onClose={() => setOpen(null)}
        onConfirm={() =>
          send.mutate({
            deploymentId: d.id,
            type: directive,
            reason,
            ...(directive === DirectiveType.SET_INTERVAL && intervalMs !== null ? { heartbeatInterval: durationFromMs(intervalMs) } : {}),
          })
        }
      >
        <SelectField
          label="Directive"
          value={String(directive)}
          onChange={(v) => setDirective(Number(v) as DirectiveType)}
          options={DIRECTIVE_CHOICES.map((t) => ({ value: String(t), label: DIRECTIVE_LABELS[t] }))}
          error={fieldErrors.type}
        />
        {directive === DirectiveType.SET_INTERVAL ? (
          <DurationField label="Heartbeat interval" value={interval} onChange={setIntervalValue} hint="Between 1 second and 1 hour." error={fieldErrors.heartbeat_interval ?? (intervalMs === null ? "Enter a number." : null)} />
        ) : null}
        {reasonField(false)}
      </ConfirmDialog>
    </Section>
  );
}

/** The deployment screen; see the module comment. */
export function DeploymentScreen({ id }: { id: string }) {
  const { lacks } = useSession();
  const query = useQuery(LicensingService.method.getDeployment, { deploymentId: id }, { enabled: lacks("license.read") === null });
  const d = query.data?.deployment;
  return (
    <Page title={d?.name || "Deployment"} kicker={d ? "Deployment" : undefined} permission="license.read">
      <p>
        <Link to={pathFor({ name: "licenses" })}>← All licences</Link>
      </p>
      {query.isPending ? (
        <Skeleton lines={6} label="Loading the deployment" />
      ) : query.error ? (
        <ErrorBanner error={query.error} title="Could not load the deployment" onRetry={() => void query.refetch()} />
      ) : !d || !query.data ? (
        <Notice tone="warning" title="The server sent no deployment">
          <p>Reload the page to try again.</p>
        </Notice>
      ) : (
        <>
          <Verdict data={query.data} />
          <Actions data={query.data} />
          <div className="grid-2">
            <LicenseSection license={query.data.license} deployment={d} />
            <div>
              <HeartbeatSection data={query.data} />
              <CertificateSection data={query.data} />
            </div>
          </div>
          <Timeline deploymentId={d.id} licenseId={query.data.license?.id ?? ""} />
        </>
      )}
    </Page>
  );
}
