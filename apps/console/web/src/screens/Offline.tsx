/**
 * Offline (licensing/offline, `POST /offline/activations` and `/offline/renewals`): answers an
 * air-gapped box (docs/design.md §15). The operator picks or pastes the request file the box
 * wrote; the screen reads it for display without trusting it (lib/offline-request.ts), and
 * "Answer request" sends it to licensing, which verifies it and signs the response file. The
 * response is offered as a download and a copy, with what it will do to the box in words.
 */
import { useMutation } from "@connectrpc/connect-query";
import { LicensingService, type OfflineAnswer } from "@lcp/proto/licensing/v1/licensing_service_pb";
import { DeploymentState } from "@lcp/proto/licensing/v1/types_pb";
import { useEffect, useRef, useState, type ChangeEvent, type FormEvent } from "react";
import { Button } from "../components/Button.js";
import { CopyButton } from "../components/CopyButton.js";
import { ErrorBanner, Notice } from "../components/ErrorBanner.js";
import { Facts } from "../components/Facts.js";
import { Field, TextAreaField } from "../components/Field.js";
import { Page, Section } from "../components/Page.js";
import { DateTime } from "../components/RelativeTime.js";
import { StateBadge } from "../components/StateBadge.js";
import { describeError } from "../lib/errors.js";
import { explainAnswer } from "../lib/offline-answer.js";
import { MAX_REQUEST_FILE_BYTES, readRequestFile, responseFileName, type RequestFileView, type RequestKind } from "../lib/offline-request.js";
import { Link } from "../lib/navigation.js";
import { deploymentPath } from "../lib/router.js";

const KIND_TITLES: Readonly<Record<RequestKind, string>> = {
  activation: "Activation request",
  renewal: "Renewal request",
};

const absent = <span className="muted">not in the file</span>;

/** What the request file says, as the box wrote it. */
function RequestFacts({ view }: { view: RequestFileView }) {
  const renewal = view.kind === "renewal";
  return (
    <Section title={KIND_TITLES[view.kind]}>
      <Notice tone="info">
        <p>
          Read from the file as the box wrote it, not verified: licensing checks its signature, the licence and the box's key when you answer it. The box's clock may be
          wrong.
        </p>
      </Notice>
      <Facts
        items={[
          ["Kind", renewal ? "Renewal: the box asks for its next lease" : "Activation: the box asks for its certificate and first lease"],
          ["Licence ID", view.licenseId ? <span className="mono">{view.licenseId}</span> : absent],
          ...(renewal ? ([["Deployment ID", view.deploymentId ? <span className="mono">{view.deploymentId}</span> : absent]] as const) : []),
          ["Box time", view.boxTime ? <DateTime value={view.boxTime} /> : absent],
          ...(renewal ? ([["Lease sequence held", view.leaseSeq ?? absent]] as const) : []),
          ["Fingerprint hash", view.fingerprintHash ? <span className="mono">{view.fingerprintHash}</span> : absent],
          ["Agent", view.agentVersion ?? <span className="muted">—</span>],
          ...(renewal
            ? ([
                [
                  "Usage",
                  view.usage.length === 0 ? (
                    <span className="muted">none reported</span>
                  ) : (
                    <>
                      <ul className="chips">
                        {view.usage.map((u, i) => (
                          <li key={i} className="chip">
                            <span className="mono">{u.name}</span>: {u.value}
                          </li>
                        ))}
                      </ul>
                      {view.usageTruncated ? <span className="muted">More counters in the file are not shown.</span> : null}
                    </>
                  ),
                ],
              ] as const)
            : []),
        ]}
      />
    </Section>
  );
}

/** The response file as a download link; the Blob URL lives as long as the link. */
function DownloadLink({ file, name }: { file: string; name: string }) {
  const [url, setUrl] = useState<string | null>(null);
  useEffect(() => {
    const u = URL.createObjectURL(new Blob([file], { type: "application/jwt" }));
    setUrl(u);
    return () => URL.revokeObjectURL(u);
  }, [file]);
  if (!url) return null;
  return (
    <a className="btn btn-primary" href={url} download={name}>
      Download response file
    </a>
  );
}

interface Answered {
  readonly kind: RequestKind;
  readonly file: string;
  readonly answer: OfflineAnswer;
}

function Result({ answered, onAgain }: { answered: Answered; onAgain: () => void }) {
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus(), []);
  const { answer, file, kind } = answered;
  const name = responseFileName(answer.licenseId, kind);
  const locks = answer.state === DeploymentState.LOCKED;
  return (
    <section className="section" aria-labelledby="answer-heading">
      <div className="section-head">
        <h2 id="answer-heading" ref={heading} tabIndex={-1}>
          {kind === "activation" ? "Activation answered" : "Renewal answered"}
        </h2>
        <div className="section-actions">
          <Button onClick={onAgain}>Answer another request</Button>
        </div>
      </div>
      <Notice tone={locks ? "warning" : "success"}>
        <p>{explainAnswer(answer)}</p>
        <p>
          Next: carry the response file back to the box and import it there before the import deadline. The box checks that the file is signed by its control plane and answers
          the request it is waiting for.
        </p>
      </Notice>
      <Facts
        items={[
          ["State once imported", <StateBadge key="s" state={answer.state} lockReason={answer.lockReason} />],
          ["Licence ID", <span key="l" className="mono">{answer.licenseId || "—"}</span>],
          ["Deployment", answer.deploymentId ? <Link key="d" to={deploymentPath(answer.deploymentId)}>{answer.deploymentId}</Link> : "—"],
          ["Lease sequence", answer.leaseSeq > 0n ? answer.leaseSeq.toString() : <span className="muted">none: this answer locks the box</span>],
          ["Lease expires", <DateTime key="e" value={answer.leaseExpireTime} />],
          ["Box asks again from", <DateTime key="r" value={answer.renewTime} />],
          ["Import before", <DateTime key="i" value={answer.responseExpireTime} />],
        ]}
      />
      <div className="form-actions">
        <DownloadLink file={file} name={name} />
        <CopyButton text={file} label="Copy response file" size="normal" />
      </div>
      <TextAreaField className="file-text token" label="Response file" value={file} readOnly mono rows={4} hint={`Saved as ${name}. It holds no secret, but only the box it answers accepts it.`} />
    </section>
  );
}

function RequestForm({ onDone }: { onDone: (a: Answered) => void }) {
  const [text, setText] = useState("");
  const [fileProblem, setFileProblem] = useState<string | null>(null);
  const activation = useMutation(LicensingService.method.respondToActivation);
  const renewal = useMutation(LicensingService.method.respondToRenewal);
  const reading = readRequestFile(text);
  const kind = reading.ok ? reading.kind : null;
  const current = kind === "renewal" ? renewal : activation;
  const pending = activation.isPending || renewal.isPending;
  const error = kind ? current.error : null;
  const fieldErrors = error ? describeError(error).fieldErrors : {};

  const replace = (next: string) => {
    activation.reset();
    renewal.reset();
    setText(next);
  };
  const pick = async (e: ChangeEvent<HTMLInputElement>) => {
    const input = e.target;
    const file = input.files?.[0];
    // Cleared, so picking the same file again (after editing the text) reads it again.
    input.value = "";
    if (!file) return;
    if (file.size > MAX_REQUEST_FILE_BYTES) {
      setFileProblem(`${file.name.slice(0, 80)} is larger than ${MAX_REQUEST_FILE_BYTES / 1024} KiB: a request file is a few KiB. Check that you picked the file the box wrote.`);
      replace("");
      return;
    }
    try {
      const content = await file.text();
      setFileProblem(null);
      replace(content);
    } catch {
      setFileProblem("The file could not be read. Pick it again, or paste its text below.");
    }
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (pending || !reading.ok) return;
    const requestFile = text.trim();
    const done = (res: { responseFile: string; answer?: OfflineAnswer }) => {
      if (res.answer) onDone({ kind: reading.kind, file: res.responseFile, answer: res.answer });
    };
    if (reading.kind === "activation") activation.mutate({ requestFile }, { onSuccess: done });
    else renewal.mutate({ requestFile }, { onSuccess: done });
  };
  const textProblem = !reading.ok && reading.code !== "EMPTY" ? reading.message : null;
  return (
    <form className="form" aria-label="Answer a request file" onSubmit={submit} noValidate>
      <Field label="Request file" hint={`The file the box wrote (at most ${MAX_REQUEST_FILE_BYTES / 1024} KiB). Its text appears below.`} error={fileProblem}>
        {(control) => <input {...control} className="input" type="file" accept=".jwt,.jws,.txt,application/jwt,text/plain" onChange={(e) => void pick(e)} />}
      </Field>
      <TextAreaField
        className="file-text"
        label="Request file text"
        value={text}
        onChange={(v) => {
          setFileProblem(null);
          replace(v);
        }}
        mono
        rows={5}
        hint="Or paste the file's text: one line, three parts separated by dots."
        error={fieldErrors.request_file ?? textProblem}
      />
      {reading.ok ? <RequestFacts view={reading} /> : null}
      {error ? <ErrorBanner error={error} title={reading.ok ? `The ${reading.kind} request was not answered` : undefined} /> : null}
      <div className="form-actions">
        <Button type="submit" variant="primary" busy={pending} disabledReason={reading.ok ? null : "pick or paste a request file first"}>
          Answer request
        </Button>
      </div>
    </form>
  );
}

/** The Offline screen; see the module comment. */
export function OfflineScreen() {
  const [answered, setAnswered] = useState<Answered | null>(null);
  // A new form each time, so nothing of the last request lingers in it.
  const [round, setRound] = useState(0);
  return (
    <Page
      title="Offline"
      permission="license.issue"
      intro="An air-gapped box never reaches the control plane: it writes a request file, an operator carries it here, and carries the signed answer back to the box. Answering is audited (license.activate or license.renew, channel file)."
    >
      {answered ? (
        <Result
          answered={answered}
          onAgain={() => {
            setAnswered(null);
            setRound((r) => r + 1);
          }}
        />
      ) : (
        <RequestForm key={round} onDone={setAnswered} />
      )}
    </Page>
  );
}
