/**
 * New license (licensing/license-new, `POST /licenses`): provision a deployment (online or
 * air-gapped) with its licence auto-issued, or issue a licence for an existing deployment. The
 * result is the signed token, ready to copy, with its claims decoded for reading (not verified:
 * the box verifies it).
 */
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { useMutation } from "@connectrpc/connect-query";
import { LicensingService } from "@lcp/proto/licensing/v1/licensing_service_pb";
import { Connectivity, DeploymentKind, type Deployment, type License } from "@lcp/proto/licensing/v1/types_pb";
import { DAY_MS } from "@lcp/domain";
import { useEffect, useRef, useState, type FormEvent, type ReactNode } from "react";
import { Button } from "../components/Button.js";
import { CopyButton } from "../components/CopyButton.js";
import { ErrorBanner, Notice } from "../components/ErrorBanner.js";
import { CheckboxField, DurationField, RadioGroup, SelectField, TextAreaField, TextField } from "../components/Field.js";
import { Page, Section } from "../components/Page.js";
import { DateTime } from "../components/RelativeTime.js";
import { durationValueFromMs, durationValueToMs, type DurationValue } from "../lib/duration.js";
import { describeError } from "../lib/errors.js";
import { formatDateTime, labelOf, LICENSE_STATUS_LABELS, parseEntitlements } from "../lib/format.js";
import { CLAIM_LABELS, decodeToken, TIME_CLAIMS } from "../lib/jwt.js";
import { Link, useSearchParams } from "../lib/navigation.js";
import { deploymentPath, pathFor } from "../lib/router.js";

type Mode = "provision" | "issue";

const DEFAULT_TERM = durationValueFromMs(365 * DAY_MS);

function ClaimValue({ name, value }: { name: string; value: unknown }): ReactNode {
  if (TIME_CLAIMS.has(name) && typeof value === "number") return <DateTime value={new Date(value * 1000)} />;
  if (Array.isArray(value)) {
    return value.length === 0 ? (
      <span className="muted">none</span>
    ) : (
      <ul className="chips">
        {value.map((v, i) => (
          <li key={i} className="chip">
            {String(v)}
          </li>
        ))}
      </ul>
    );
  }
  return <span className="mono">{typeof value === "string" ? value : JSON.stringify(value)}</span>;
}

function IssuedToken({ license }: { license: License }) {
  const decoded = decodeToken(license.token);
  const names = decoded.ok ? [...Object.keys(CLAIM_LABELS).filter((k) => k in decoded.claims), ...Object.keys(decoded.claims).filter((k) => !(k in CLAIM_LABELS))] : [];
  return (
    <>
      <div className="token">
        <TextAreaField label="Licence token" value={license.token} readOnly mono rows={5} hint="Give this to whoever installs the box: it activates with it. Treat it as a credential." />
        <CopyButton text={license.token} label="Copy token" />
      </div>
      <h3 className="subhead">Decoded claims</h3>
      <Notice tone="info">
        <p>
          This is a signed token{decoded.ok && typeof decoded.header.alg === "string" ? ` (${decoded.header.alg}` : ""}
          {decoded.ok && typeof decoded.header.kid === "string" ? `, signing key ${decoded.header.kid})` : decoded.ok && typeof decoded.header.alg === "string" ? ")" : ""}. Its claims are decoded here
          for reading only: the browser does not verify the signature. The box verifies it against the control plane's published signing keys (JWKS).
        </p>
      </Notice>
      {decoded.ok ? (
        <dl className="dl">
          {typeof decoded.header.typ === "string" ? (
            <div className="dl-row">
              <dt>Type (typ)</dt>
              <dd className="mono">{decoded.header.typ}</dd>
            </div>
          ) : null}
          {names.map((k) => (
            <div key={k} className="dl-row">
              <dt>{CLAIM_LABELS[k] ?? k}</dt>
              <dd>
                <ClaimValue name={k} value={decoded.claims[k]} />
              </dd>
            </div>
          ))}
        </dl>
      ) : (
        <p className="muted">{decoded.problem}</p>
      )}
    </>
  );
}

function Result({ deployment, license, onAgain }: { deployment: Deployment | undefined; license: License | undefined; onAgain: () => void }) {
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus(), []);
  const deploymentId = deployment?.id ?? license?.deploymentId ?? "";
  return (
    <section className="section" aria-labelledby="result-heading">
      <div className="section-head">
        <h2 id="result-heading" ref={heading} tabIndex={-1}>
          {license ? "Licence issued" : "Deployment provisioned"}
        </h2>
        <div className="section-actions">
          <Button onClick={onAgain}>Issue another</Button>
        </div>
      </div>
      <dl className="dl">
        {deploymentId ? (
          <div className="dl-row">
            <dt>Deployment</dt>
            <dd>
              <Link to={deploymentPath(deploymentId)}>{deployment?.name || deploymentId}</Link>
            </dd>
          </div>
        ) : null}
        {license ? (
          <>
            <div className="dl-row">
              <dt>Licence ID</dt>
              <dd className="mono">{license.id}</dd>
            </div>
            <div className="dl-row">
              <dt>Status</dt>
              <dd>{labelOf(LICENSE_STATUS_LABELS, license.status)}</dd>
            </div>
            <div className="dl-row">
              <dt>Expires</dt>
              <dd>
                <DateTime value={license.expireTime} />
              </dd>
            </div>
          </>
        ) : null}
      </dl>
      {!license ? <p className="muted">No licence was issued: issue one for this deployment when it is needed.</p> : null}
      {deployment?.connectivity === Connectivity.AIR_GAPPED && license ? (
        <Notice tone="info" title="An air-gapped box activates by file">
          <p>
            Give the licence token to whoever installs the box. The box writes an activation request file: carry it to the{" "}
            <Link to={pathFor({ name: "offline" })}>Offline</Link> page, answer it, and carry the response file back to the box.
          </p>
        </Notice>
      ) : null}
      {license && license.token ? <IssuedToken license={license} /> : null}
      {license && !license.token ? <p className="muted">The token is shown only to roles that may issue licences.</p> : null}
    </section>
  );
}

function ProvisionForm({ onDone }: { onDone: (d: Deployment | undefined, l: License | undefined) => void }) {
  const [name, setName] = useState("");
  const [customer, setCustomer] = useState("");
  const [kind, setKind] = useState<DeploymentKind>(DeploymentKind.ON_PREM);
  const [autoIssue, setAutoIssue] = useState(true);
  const [entitlements, setEntitlements] = useState("");
  const [term, setTerm] = useState<DurationValue>(DEFAULT_TERM);
  const [connectivity, setConnectivity] = useState<"online" | "air-gapped">("online");
  const provision = useMutation(LicensingService.method.provisionDeployment, { onSuccess: (res) => onDone(res.deployment, res.license) });
  const termMs = durationValueToMs(term);
  const errors = provision.error ? describeError(provision.error).fieldErrors : {};
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (provision.isPending || termMs === null) return;
    provision.mutate({
      name: name.trim(),
      customer: customer.trim(),
      kind,
      entitlements: parseEntitlements(entitlements),
      term: durationFromMs(termMs),
      autoIssueLicense: autoIssue,
      connectivity: connectivity === "air-gapped" ? Connectivity.AIR_GAPPED : Connectivity.ONLINE,
    });
  };
  return (
    <form className="form" aria-label="Provision a deployment" onSubmit={submit} noValidate>
      <div className="form-grid">
        <TextField label="Deployment name" required value={name} onChange={setName} maxLength={200} hint="How operators will know the box, e.g. icu-ward-3." error={errors.name} />
        <TextField label="Customer" required value={customer} onChange={setCustomer} maxLength={200} error={errors.customer} />
        <SelectField
          label="Kind"
          value={String(kind)}
          onChange={(v) => {
            const k = Number(v) as DeploymentKind;
            setKind(k);
            setAutoIssue(k === DeploymentKind.ON_PREM);
          }}
          options={[
            { value: String(DeploymentKind.ON_PREM), label: "On-prem appliance" },
            { value: String(DeploymentKind.CLOUD), label: "Cloud" },
          ]}
          error={errors.kind}
        />
        <DurationField label="Licence term" value={term} onChange={setTerm} hint="From now; at most 10 years." error={errors.term ?? (termMs === null ? "Enter a number." : null)} />
        <TextAreaField className="span-2" label="Entitlements" value={entitlements} onChange={setEntitlements} rows={3} hint="One per line (or separated by commas), e.g. imaging or max-users:50." error={errors.entitlements} />
        <div className="span-2">
          <RadioGroup
            legend="Connectivity"
            name="connectivity"
            value={connectivity}
            onChange={setConnectivity}
            options={[
              { value: "online", label: "Online", hint: "The box reaches the control plane and heartbeats." },
              {
                value: "air-gapped",
                label: "Air-gapped",
                hint: "The box never reaches the control plane: it activates and renews by signed files an operator carries to the Offline page.",
              },
            ]}
          />
        </div>
        <div className="span-2">
          <CheckboxField label="Issue its licence now" checked={autoIssue} onChange={setAutoIssue} hint="On-prem appliances get their licence at provisioning; a cloud deployment usually does not." />
        </div>
      </div>
      {provision.error ? <ErrorBanner error={provision.error} title={Object.keys(errors).length > 0 ? "Check the highlighted field" : "The deployment was not provisioned"} /> : null}
      <div className="form-actions">
        <Button type="submit" variant="primary" busy={provision.isPending}>
          Provision deployment
        </Button>
      </div>
    </form>
  );
}

function endOfDay(date: string): Date | null {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date)) return null;
  const d = new Date(`${date}T23:59:59`);
  return Number.isNaN(d.getTime()) ? null : d;
}

function IssueForm({ initialDeployment, onDone }: { initialDeployment: string; onDone: (d: Deployment | undefined, l: License | undefined) => void }) {
  const [deploymentId, setDeploymentId] = useState(initialDeployment);
  const [entitlements, setEntitlements] = useState("");
  const [ends, setEnds] = useState<"term" | "date">("term");
  const [term, setTerm] = useState<DurationValue>(DEFAULT_TERM);
  const [date, setDate] = useState("");
  const issue = useMutation(LicensingService.method.issueLicense, { onSuccess: (res) => onDone(undefined, res.license) });
  const termMs = durationValueToMs(term);
  const end = endOfDay(date);
  const errors = issue.error ? describeError(issue.error).fieldErrors : {};
  const localProblem = ends === "term" ? (termMs === null ? "Enter a number." : null) : end === null ? "Choose the day the licence ends." : null;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (issue.isPending || localProblem) return;
    issue.mutate({
      deploymentId: deploymentId.trim().toLowerCase(),
      entitlements: parseEntitlements(entitlements),
      ...(ends === "term" && termMs !== null ? { term: durationFromMs(termMs) } : {}),
      ...(ends === "date" && end ? { expireTime: timestampFromDate(end) } : {}),
    });
  };
  return (
    <form className="form" aria-label="Issue a licence" onSubmit={submit} noValidate>
      <Notice tone="warning">
        <p>
          Issuing supersedes the deployment's current licence: its token no longer activates. A running box keeps running and adopts the new licence with its next lease. A revoked
          deployment is issued nothing.
        </p>
      </Notice>
      <TextField label="Deployment ID" required value={deploymentId} onChange={setDeploymentId} mono spellCheck={false} maxLength={64} error={errors.deployment_id} />
      <TextAreaField label="Entitlements" value={entitlements} onChange={setEntitlements} rows={3} hint="One per line (or separated by commas), e.g. imaging or max-users:50." error={errors.entitlements} />
      <RadioGroup
        legend="Licence ends"
        name="ends"
        value={ends}
        onChange={setEnds}
        options={[
          { value: "term", label: "After a term from now" },
          { value: "date", label: "On a date" },
        ]}
      />
      {ends === "term" ? (
        <DurationField label="Licence term" value={term} onChange={setTerm} hint="From now; at most 10 years." error={errors.term ?? (termMs === null ? "Enter a number." : null)} />
      ) : (
        <TextField
          label="Expiry date"
          type="date"
          value={date}
          onChange={setDate}
          hint={end ? `The licence ends at ${formatDateTime(end)} (your time zone).` : "The licence ends at the end of this day, in your time zone."}
          error={errors.expire_time ?? null}
        />
      )}
      {issue.error ? <ErrorBanner error={issue.error} title={Object.keys(errors).length > 0 ? "Check the highlighted field" : "The licence was not issued"} /> : null}
      <div className="form-actions">
        <Button type="submit" variant="primary" busy={issue.isPending} disabledReason={ends === "date" && end === null ? "choose the expiry date first" : null}>
          Issue licence
        </Button>
      </div>
    </form>
  );
}

/** The New license screen; see the module comment. */
export function LicenseNewScreen() {
  const [params] = useSearchParams();
  const preset = params.get("deployment") ?? "";
  const [mode, setMode] = useState<Mode>(preset ? "issue" : "provision");
  const [result, setResult] = useState<{ deployment: Deployment | undefined; license: License | undefined } | null>(null);
  // A new form each time ("Issue another"), so nothing of the last licence lingers in it.
  const [round, setRound] = useState(0);
  return (
    <Page title="New license" permission="license.issue" intro="The licence is a signed token, signed by the control plane's active signing key. Issuing is audited (license.issue).">
      {result ? (
        <Result
          deployment={result.deployment}
          license={result.license}
          onAgain={() => {
            setResult(null);
            setRound((r) => r + 1);
          }}
        />
      ) : (
        <>
          <RadioGroup
            legend="What do you want to do?"
            name="mode"
            value={mode}
            onChange={setMode}
            options={[
              { value: "provision", label: "Provision a new deployment", hint: "Creates the deployment and, for an on-prem appliance, issues its licence in the same step." },
              { value: "issue", label: "Issue a licence for an existing deployment", hint: "For a renewal or new entitlements." },
            ]}
          />
          {mode === "provision" ? (
            <ProvisionForm key={`p${round}`} onDone={(deployment, license) => setResult({ deployment, license })} />
          ) : (
            <IssueForm key={`i${round}`} initialDeployment={preset} onDone={(deployment, license) => setResult({ deployment, license })} />
          )}
        </>
      )}
    </Page>
  );
}
