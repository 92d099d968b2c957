/**
 * "Send directive": the form (deployment, directive, interval for SET_INTERVAL, reason) inside
 * the confirmation that says what the box will do, checked here as the service will check it
 * (lib/directive.ts) and then sent with SendDirective. Mount it with a new `key` for each
 * opening, so every opening starts from a clean form.
 */
import { useMutation } from "@connectrpc/connect-query";
import { LicensingService } from "@lcp/proto/licensing/v1/licensing_service_pb";
import { DirectiveType } from "@lcp/proto/licensing/v1/types_pb";
import { useState } from "react";
import { describeError } from "../lib/errors.js";
import { emptyDirectiveForm, OPERATOR_DIRECTIVES, operatorDirective, validateDirectiveForm, type DirectiveForm } from "../lib/directive.js";
import { ConfirmDialog } from "./ConfirmDialog.js";
import { DurationField, SelectField, TextAreaField, TextField } from "./Field.js";

/** What a sent directive came to, for the screen to show. */
export interface SentDirective {
  readonly deploymentId: string;
  readonly directiveId: string;
  readonly label: string;
  readonly delivered: boolean;
}

/** Props of {@link DirectiveDialog}. */
export interface DirectiveDialogProps {
  readonly open: boolean;
  /** The deployment the dialog opens for (from a row), or "" to type one. */
  readonly initialDeploymentId?: string;
  readonly onClose: () => void;
  readonly onSent: (sent: SentDirective) => void;
}

const TYPE_OPTIONS = [{ value: "", label: "Choose a directive" }, ...OPERATOR_DIRECTIVES.map((d) => ({ value: String(d.type), label: d.label }))];

/** The Send directive dialog; see the module comment. */
export function DirectiveDialog({ open, initialDeploymentId = "", onClose, onSent }: DirectiveDialogProps) {
  const [form, setForm] = useState<DirectiveForm>(() => emptyDirectiveForm(initialDeploymentId));
  const [problems, setProblems] = useState<Readonly<Record<string, string>>>({});
  const send = useMutation(LicensingService.method.sendDirective);
  const chosen = form.type === "" ? undefined : operatorDirective(Number(form.type) as DirectiveType);
  const serverFields = send.error ? describeError(send.error).fieldErrors : {};
  const fieldError = (name: string) => problems[name] ?? serverFields[name] ?? null;
  const edit = (patch: Partial<DirectiveForm>) => {
    setForm((f) => ({ ...f, ...patch }));
    setProblems({});
  };

  const confirm = () => {
    const checked = validateDirectiveForm(form);
    if (!checked.ok) {
      setProblems(checked.errors);
      return;
    }
    setProblems({});
    send.mutate(checked.request, {
      onSuccess: (res) =>
        onSent({
          deploymentId: checked.request.deploymentId,
          directiveId: res.directive?.id ?? "",
          label: checked.directive.label,
          delivered: res.delivered,
        }),
    });
  };

  return (
    <ConfirmDialog
      open={open}
      title="Send a directive to a box"
      confirmLabel="Send the directive"
      tone="primary"
      busy={send.isPending}
      error={send.error}
      onConfirm={confirm}
      onClose={onClose}
      consequence={
        <>
          <p>{chosen ? chosen.effect : "Choose a directive to see what the box will do."}</p>
          <p className="muted">
            A box holding its stream receives it at once; otherwise it is queued and delivered when the box next connects. Sending is recorded in the audit trail
            (directive.send).
          </p>
        </>
      }
    >
      <TextField
        label="Deployment ID"
        required
        mono
        spellCheck={false}
        maxLength={64}
        value={form.deploymentId}
        onChange={(deploymentId) => edit({ deploymentId })}
        error={fieldError("deployment_id")}
      />
      <SelectField label="Directive" required value={form.type} options={TYPE_OPTIONS} onChange={(type) => edit({ type })} error={fieldError("type")} />
      {chosen?.type === DirectiveType.SET_INTERVAL ? (
        <DurationField
          label="Heartbeat interval"
          required
          hint="From 1 second to 1 hour."
          value={form.interval}
          onChange={(interval) => edit({ interval })}
          error={fieldError("heartbeat_interval")}
        />
      ) : null}
      <TextAreaField label="Reason" hint="Optional; recorded in the audit trail with the directive." rows={2} maxLength={1024} value={form.reason} onChange={(reason) => edit({ reason })} error={fieldError("reason")} />
    </ConfirmDialog>
  );
}
