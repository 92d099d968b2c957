/**
 * Signing keys (licensing/signing, signing.manage: super_admin only). The token signing keys
 * with their lifecycle (ListKeys: NEXT → ACTIVE → RETIRED, any → REVOKED), "Create key",
 * "Rotate keys", and per key "Retire" and "Revoke" (the kid typed to confirm); the JWKS
 * verifiers receive (GetJwks); and the appliance CA, which the console can only rotate
 * (RotateApplianceCa): its trust bundle is internal to the services, so the screen shows the
 * CA and bundle the rotation answers with.
 */
import { createClient } from "@connectrpc/connect";
import { createConnectQueryKey, useQuery, useTransport } from "@connectrpc/connect-query";
import { MAX_REASON_LENGTH, plainTextProblem } from "@lcp/domain";
import { KeyState, SigningKeyService, type SigningKey } from "@lcp/proto/signing/v1/signing_key_service_pb";
import { keepPreviousData, useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef, useState, type ReactNode } from "react";
import { Button } from "../components/Button.js";
import { ConfirmDialog } from "../components/ConfirmDialog.js";
import { CopyButton } from "../components/CopyButton.js";
import { DataTable, type Column } from "../components/DataTable.js";
import { EmptyState } from "../components/EmptyState.js";
import { ErrorBanner } from "../components/ErrorBanner.js";
import { TextAreaField } from "../components/Field.js";
import { Page, Section } from "../components/Page.js";
import { DateTime } from "../components/RelativeTime.js";
import { Skeleton } from "../components/Spinner.js";
import { describeError } from "../lib/errors.js";
import { dateOf, formatDate, formatDateTime } from "../lib/format.js";
import { useSession } from "../lib/session-context.js";
import {
  APPLIANCE_CERTIFICATE_VALIDITY_MS,
  KEY_STATE_MEANINGS,
  keyStateLabel,
  prettyJson,
  retireBlockedReason,
  revokeBlockedReason,
  rotatedCaTrustedUntil,
} from "../lib/signing.js";
import { parseCertificatePem, type CertificateSummary } from "../lib/x509.js";
import { useKeysetPaging } from "../lib/keyset-paging.js";
import "../components/operations.css";

const PAGE_SIZE = 100;
const VALIDITY_DAYS = Math.round(APPLIANCE_CERTIFICATE_VALIDITY_MS / 86_400_000);

const BADGE: Readonly<Partial<Record<KeyState, string>>> = {
  [KeyState.NEXT]: "badge-pending",
  [KeyState.ACTIVE]: "badge-active",
  [KeyState.RETIRED]: "badge-unknown",
  [KeyState.REVOKED]: "badge-locked",
};

function KeyStateBadge({ state }: { state: KeyState }) {
  return (
    <span className={`badge ${BADGE[state] ?? "badge-unknown"}`} title={KEY_STATE_MEANINGS[state]}>
      {keyStateLabel(state)}
    </span>
  );
}

/** What the operator asked for: one dialog at a time, remounted (`n`) for each opening. */
type KeyAction =
  | { readonly kind: "create" }
  | { readonly kind: "rotate" }
  | { readonly kind: "retire"; readonly key: SigningKey }
  | { readonly kind: "revoke"; readonly key: SigningKey }
  | { readonly kind: "rotate-ca" };

interface DialogState {
  readonly action: KeyAction | null;
  readonly open: boolean;
  readonly n: number;
}

/** The result of the last action, shown in words. */
interface Outcome {
  readonly title: string;
  readonly body: ReactNode;
}

/** The appliance CA as a rotation answered. */
interface CaRotation {
  readonly at: number;
  readonly caPem: string;
  readonly bundle: readonly string[];
}

function reasonProblem(reason: string): string | null {
  if (reason.length > MAX_REASON_LENGTH) return `A reason is at most ${MAX_REASON_LENGTH} characters.`;
  const problem = plainTextProblem("The reason", reason, { multiline: true });
  return problem ? `${problem}.` : null;
}

/** A confirmation with a reason for the audit trail, which runs `run` and reports failures in words. */
function ReasonDialog(props: {
  open: boolean;
  title: string;
  consequence: ReactNode;
  confirmLabel: string;
  tone: "danger" | "primary";
  confirmPhrase?: string;
  run: (reason: string) => Promise<void>;
  onClose: () => void;
}) {
  const [reason, setReason] = useState("");
  const [problem, setProblem] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const confirm = async () => {
    const text = reason.trim();
    const p = reasonProblem(text);
    setProblem(p);
    if (p) return;
    setBusy(true);
    setError(null);
    try {
      await props.run(text);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const fieldError = problem ?? (error ? (describeError(error).fieldErrors.reason ?? null) : null);
  return (
    <ConfirmDialog
      open={props.open}
      title={props.title}
      consequence={props.consequence}
      confirmLabel={props.confirmLabel}
      tone={props.tone}
      confirmPhrase={props.confirmPhrase}
      busy={busy}
      error={error}
      onConfirm={() => void confirm()}
      onClose={props.onClose}
    >
      <TextAreaField label="Reason" hint="Recorded in the audit trail." rows={2} maxLength={MAX_REASON_LENGTH} value={reason} onChange={setReason} error={fieldError} />
    </ConfirmDialog>
  );
}

function ActionDialog({ state, onClose, onDone }: { state: DialogState; onClose: () => void; onDone: (outcome: Outcome, ca?: CaRotation) => void }) {
  const transport = useTransport();
  const queryClient = useQueryClient();
  const client = createClient(SigningKeyService, transport);
  const refresh = () => queryClient.invalidateQueries({ queryKey: createConnectQueryKey({ schema: SigningKeyService, cardinality: undefined }) });
  const action = state.action;
  if (!action) return null;
  const common = { open: state.open, onClose };
  switch (action.kind) {
    case "create":
      return (
        <ReasonDialog
          {...common}
          title="Create a signing key?"
          confirmLabel="Create the key"
          tone="primary"
          consequence={
            <p>
              A new Ed25519 key is created in state Next: it is published in the JWKS, so verifiers and boxes learn it, but it signs nothing until the next rotation.
            </p>
          }
          run={async (reason) => {
            const { key } = await client.createKey({ reason });
            await refresh();
            onDone({ title: "Signing key created", body: <p>Key <span className="kid">{key?.kid}</span> is published as Next; it signs once keys are rotated.</p> });
          }}
        />
      );
    case "rotate":
      return (
        <ReasonDialog
          {...common}
          title="Rotate the signing keys?"
          confirmLabel="Rotate now"
          tone="primary"
          consequence={
            <>
              <p>
                The oldest Next key becomes Active and signs every new licence and lease from now on (a key is created first if there is none). The Active key is
                retired: it signs nothing more and still verifies what it signed. A fresh Next key is published for the following rotation.
              </p>
              <p>Connected boxes are told to refresh their keys within seconds; nothing they hold stops verifying.</p>
            </>
          }
          run={async (reason) => {
            const res = await client.rotateKeys({ reason });
            await refresh();
            onDone({
              title: "Signing keys rotated",
              body: (
                <ul>
                  <li>
                    Now signing: <span className="kid">{res.activated?.kid}</span>
                  </li>
                  {res.retired ? (
                    <li>
                      Retired (still verifies): <span className="kid">{res.retired.kid}</span>
                    </li>
                  ) : null}
                  <li>
                    Published as next: <span className="kid">{res.next?.kid}</span>
                  </li>
                </ul>
              ),
            });
          }}
        />
      );
    case "retire":
      return (
        <ReasonDialog
          {...common}
          title={`Retire signing key ${action.key.kid}?`}
          confirmLabel="Retire this key"
          tone="primary"
          consequence={<p>The key will never sign. It stays in the JWKS, so anything it signed still verifies.</p>}
          run={async (reason) => {
            const { key } = await client.retireKey({ kid: action.key.kid, reason });
            await refresh();
            onDone({ title: "Signing key retired", body: <p>Key <span className="kid">{key?.kid ?? action.key.kid}</span> is retired: it never signs, and still verifies.</p> });
          }}
        />
      );
    case "revoke": {
      const active = action.key.state === KeyState.ACTIVE;
      return (
        <ReasonDialog
          {...common}
          title={`Revoke signing key ${action.key.kid}?`}
          confirmLabel="Revoke this key"
          tone="danger"
          confirmPhrase={action.key.kid}
          consequence={
            <>
              <p>
                The key is removed from the JWKS, and licences and leases signed by it stop verifying within seconds: licensing re-reads the key set every few seconds
                (JWKS_MAX_AGE, 5 s by default) and tells every connected box to refresh its keys. Boxes that are offline get the new key set when they next connect.
              </p>
              <p>
                A box whose lease this key signed fetches a fresh lease and keeps running. A licence signed by it can no longer activate a box. Revocation is final.
              </p>
              {active ? (
                <p>
                  <strong>This is the active key.</strong> Nothing can be signed — no licence issued, no lease renewed — until you rotate keys.
                </p>
              ) : null}
            </>
          }
          run={async (reason) => {
            const { key } = await client.revokeKey({ kid: action.key.kid, reason });
            await refresh();
            onDone({
              title: "Signing key revoked",
              body: (
                <p>
                  Key <span className="kid">{key?.kid ?? action.key.kid}</span> is out of the JWKS; what it signed stops verifying within seconds.
                  {active ? " No key is active now: rotate keys to sign again." : ""}
                </p>
              ),
            });
          }}
        />
      );
    }
    case "rotate-ca":
      return (
        <ReasonDialog
          {...common}
          title="Rotate the appliance CA?"
          confirmLabel="Rotate the CA"
          tone="danger"
          consequence={
            <>
              <p>A new appliance CA is created; every client certificate issued from now on is signed by it.</p>
              <p>
                Boxes keep working on the certificates they hold and get one from the new CA at their next renewal: when a third of a certificate&apos;s life is left, or
                when you send Renew certificate from Heartbeats.
              </p>
              <p>
                The current CA stays trusted until the last certificate it issued expires — at most {VALIDITY_DAYS} days from now, the appliance certificate validity —
                and never past its own expiry.
              </p>
            </>
          }
          run={async (reason) => {
            const res = await client.rotateApplianceCa({ reason });
            onDone(
              { title: "Appliance CA rotated", body: <p>New client certificates are issued by the new CA from now on. Its certificate and the trust bundle are below.</p> },
              { at: Date.now(), caPem: res.caCertificatePem, bundle: res.trustBundlePem },
            );
          }}
        />
      );
  }
}

function keyColumns(open: (a: KeyAction) => void): ReadonlyArray<Column<SigningKey>> {
  return [
    { key: "kid", header: "Key ID", render: (k) => <span className="kid">{k.kid}</span> },
    { key: "state", header: "State", sortValue: (k) => k.state, render: (k) => <KeyStateBadge state={k.state} /> },
    { key: "alg", header: "Algorithm", render: (k) => <span className="mono">{k.algorithm || "—"}</span> },
    {
      key: "dates",
      header: "Lifecycle",
      sortValue: (k) => dateOf(k.createTime)?.getTime() ?? 0,
      render: (k) => (
        <dl className="lifecycle">
          <dt>Created</dt>
          <dd>
            <DateTime value={k.createTime} />
          </dd>
          {k.activateTime ? (
            <>
              <dt>Activated</dt>
              <dd>
                <DateTime value={k.activateTime} />
              </dd>
            </>
          ) : null}
          {k.retireTime ? (
            <>
              <dt>Retired</dt>
              <dd>
                <DateTime value={k.retireTime} />
              </dd>
            </>
          ) : null}
          {k.revokeTime ? (
            <>
              <dt>Revoked</dt>
              <dd>
                <DateTime value={k.revokeTime} />
                {k.revokeReason ? <span className="cell-sub">{k.revokeReason}</span> : null}
              </dd>
            </>
          ) : null}
        </dl>
      ),
    },
    {
      key: "actions",
      header: "Actions",
      render: (k) =>
        k.state === KeyState.REVOKED ? (
          <span className="muted">—</span>
        ) : (
          <span className="row-actions">
            <Button size="small" aria-label={`Retire key ${k.kid}`} disabledReason={retireBlockedReason(k.state)} onClick={() => open({ kind: "retire", key: k })}>
              Retire
            </Button>
            <Button size="small" variant="danger" aria-label={`Revoke key ${k.kid}`} disabledReason={revokeBlockedReason(k.state)} onClick={() => open({ kind: "revoke", key: k })}>
              Revoke
            </Button>
          </span>
        ),
    },
  ];
}

function Jwks() {
  const query = useQuery(SigningKeyService.method.getJwks, {});
  if (!query.data) {
    if (query.error) return <ErrorBanner error={query.error} title="Could not load the JWKS" onRetry={() => void query.refetch()} />;
    return <Skeleton lines={6} label="Loading the JWKS" />;
  }
  const { jwksJson, kids } = query.data;
  return (
    <>
      {query.error ? <ErrorBanner error={query.error} title="Could not refresh the JWKS" /> : null}
      <p className="section-sub">
        What verifiers and boxes receive: every key that is not revoked ({kids.length} {kids.length === 1 ? "key" : "keys"}, the active one first). Licensing pushes it to
        connected boxes when it changes.
      </p>
      <div className="code-actions">
        <CopyButton text={jwksJson} label="Copy JWKS" />
      </div>
      <pre tabIndex={0} aria-label="JWKS document">
        {prettyJson(jwksJson)}
      </pre>
    </>
  );
}

interface BundleEntry {
  readonly index: number;
  readonly cert: CertificateSummary | null;
}

function caColumns(rotatedAt: number): ReadonlyArray<Column<BundleEntry>> {
  return [
    { key: "ca", header: "CA", render: (e) => <strong>{e.index === 0 ? "New (current)" : `Previous ${e.index}`}</strong> },
    { key: "subject", header: "Subject", render: (e) => (e.cert ? e.cert.subject || <span className="muted">—</span> : <span className="muted">Not readable</span>) },
    { key: "serial", header: "Serial", render: (e) => (e.cert ? <span className="kid">{e.cert.serialHex}</span> : <span className="muted">—</span>) },
    {
      key: "validity",
      header: "Valid",
      render: (e) =>
        e.cert ? (
          <dl className="lifecycle">
            <dt>From</dt>
            <dd>{formatDateTime(e.cert.notBefore)}</dd>
            <dt>Until</dt>
            <dd>{formatDateTime(e.cert.notAfter)}</dd>
          </dl>
        ) : (
          <span className="muted">—</span>
        ),
    },
    {
      key: "trusted",
      header: "Trusted",
      render: (e) =>
        e.index === 0
          ? "Signs every new client certificate."
          : e.cert
            ? `While certificates it issued are valid: until ${formatDate(new Date(rotatedCaTrustedUntil(rotatedAt, e.cert.notAfter.getTime())))} at the latest.`
            : "While certificates it issued are valid.",
    },
  ];
}

function CaResult({ rotation }: { rotation: CaRotation }) {
  const entries = rotation.bundle.map((pem, index) => ({ index, cert: parseCertificatePem(pem) }));
  return (
    <>
      <div className="dense">
        <DataTable caption="Trust bundle after the rotation" columns={caColumns(rotation.at)} rows={entries} rowKey={(e) => String(e.index)} />
      </div>
      <h3 className="subhead">New CA certificate</h3>
      <div className="code-actions">
        <CopyButton text={rotation.caPem} label="Copy CA certificate" />
      </div>
      <pre tabIndex={0} aria-label="New CA certificate (PEM)">
        {rotation.caPem}
      </pre>
    </>
  );
}

/** The Signing keys screen; see the module comment. */
export function SigningScreen() {
  const { lacks } = useSession();
  const paging = useKeysetPaging();
  const query = useQuery(
    SigningKeyService.method.listKeys,
    { pageSize: PAGE_SIZE, pageToken: paging.token },
    { enabled: lacks("signing.manage") === null, placeholderData: keepPreviousData },
  );
  const [dialog, setDialog] = useState<DialogState>({ action: null, open: false, n: 0 });
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  const [ca, setCa] = useState<CaRotation | null>(null);
  const outcomeRef = useRef<HTMLDivElement>(null);
  const open = (action: KeyAction) => setDialog((d) => ({ action, open: true, n: d.n + 1 }));
  const close = () => setDialog((d) => ({ ...d, open: false }));

  // After an action the result takes focus: the row button that opened a revoke may be gone.
  useEffect(() => {
    if (outcome) outcomeRef.current?.focus();
  }, [outcome]);

  return (
    <Page
      title="Signing keys"
      permission="signing.manage"
      intro="The keys that sign licences and leases, and the CA that signs the boxes' client certificates. Every change here is audited."
      actions={
        <>
          <Button onClick={() => open({ kind: "create" })}>Create key</Button>
          <Button variant="primary" onClick={() => open({ kind: "rotate" })}>
            Rotate keys
          </Button>
        </>
      }
    >
      {outcome ? (
        <div ref={outcomeRef} tabIndex={-1} className="banner banner-success" role="status">
          <p className="banner-title">{outcome.title}</p>
          {outcome.body}
        </div>
      ) : null}
      <Section title="Keys" className="section-table">
        <div className="dense">
          <DataTable
            caption="Signing keys"
            captionHidden
            columns={keyColumns(open)}
            rows={query.data?.keys}
            rowKey={(k) => k.kid}
            loading={query.isPending}
            refreshing={query.isFetching}
            error={query.error}
            onRetry={() => void query.refetch()}
            empty={<EmptyState title="No signing keys">The service creates its first keys when it starts; Create key or Rotate keys makes one now.</EmptyState>}
            paging={paging.controls(query)}
          />
        </div>
      </Section>
      <Section title="Published key set (JWKS)">
        <Jwks />
      </Section>
      <Section title="Appliance CA" actions={<Button variant="danger" onClick={() => open({ kind: "rotate-ca" })}>Rotate appliance CA</Button>}>
        <p className="section-sub">
          The appliance CA signs the client certificates boxes present on their mTLS connections. Its certificates are held by the services only; rotating it shows the
          new CA and the trust bundle here.
        </p>
        {ca ? <CaResult rotation={ca} /> : null}
      </Section>
      <ActionDialog
        key={dialog.n}
        state={dialog}
        onClose={close}
        onDone={(o, rotation) => {
          setOutcome(o);
          if (rotation) setCa(rotation);
          close();
        }}
      />
    </Page>
  );
}
