/**
 * The "Send directive" form: which directives an operator may send by hand (the ones
 * SendDirective accepts; LOCK, SUSPEND and REACTIVATE follow from revoke and subscription
 * changes), what each makes the box do, and the form checked before it is sent. Refusals use
 * the proto field names the service names in its own refusals, so both land on the same field.
 */
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { HEARTBEAT_INTERVAL_RANGE_MS, MAX_REASON_LENGTH, plainTextProblem } from "@lcp/domain";
import { DirectiveType } from "@lcp/proto/licensing/v1/types_pb";
import type { Duration } from "@bufbuild/protobuf/wkt";
import { durationValueToMs, formatElapsed, type DurationValue } from "./duration.js";
import { isUuid } from "./format.js";

/** A directive an operator may send, in words. */
export interface OperatorDirective {
  readonly type: DirectiveType;
  readonly label: string;
  /** What the box does when it receives it. */
  readonly effect: string;
}

/** The directives SendDirective accepts, in the order the form offers them. */
export const OPERATOR_DIRECTIVES: readonly OperatorDirective[] = [
  {
    type: DirectiveType.REFRESH_KEYS,
    label: "Refresh keys",
    effect:
      "The box replaces its verification keys with the current key set (sent with the directive): licences and leases signed by a new key verify on it, and those signed by a revoked key stop verifying.",
  },
  {
    type: DirectiveType.SET_INTERVAL,
    label: "Set heartbeat interval",
    effect: "The box beats at the new interval from now on, until the heartbeat interval setting changes.",
  },
  {
    type: DirectiveType.RENEW_LEASE,
    label: "Renew lease",
    effect:
      "The control plane signs a fresh lease now and sends it; the box runs on it for a full grace window from now. Refused while the deployment is locked or pending.",
  },
  {
    type: DirectiveType.RENEW_CERTIFICATE,
    label: "Renew certificate",
    effect: "The box makes a new key pair and asks for a new client certificate over its stream, issued by the current appliance CA.",
  },
];

/** The directive entry of a type, or undefined for a type an operator may not send. */
export function operatorDirective(type: DirectiveType): OperatorDirective | undefined {
  return OPERATOR_DIRECTIVES.find((d) => d.type === type);
}

/** What the form holds while the operator edits it. */
export interface DirectiveForm {
  readonly deploymentId: string;
  /** The DirectiveType as the select's value ("" before one is chosen). */
  readonly type: string;
  readonly interval: DurationValue;
  readonly reason: string;
}

/** A fresh form, for a deployment when the dialog is opened from its row. */
export function emptyDirectiveForm(deploymentId = ""): DirectiveForm {
  return { deploymentId, type: "", interval: { amount: "60", unit: "s" }, reason: "" };
}

/** A checked form: the SendDirective request, or the problem of each field by proto field name. */
export type DirectiveFormResult =
  | {
      readonly ok: true;
      readonly request: { deploymentId: string; type: DirectiveType; heartbeatInterval?: Duration; reason: string };
      readonly directive: OperatorDirective;
      /** The interval for SET_INTERVAL, else null. */
      readonly intervalMs: number | null;
    }
  | { readonly ok: false; readonly errors: Readonly<Record<string, string>> };

/**
 * Checks the form as the service will (docs: apps/licensing operator-handlers): a deployment
 * UUID, one of the four operator directives, an interval of 1 s to 1 h with SET_INTERVAL
 * (and none otherwise), a reason of plain text within the audit trail's bound. The reason is
 * optional: the service records "operator <TYPE>" without one.
 */
export function validateDirectiveForm(form: DirectiveForm): DirectiveFormResult {
  const errors: Record<string, string> = {};
  const deploymentId = form.deploymentId.trim().toLowerCase();
  if (deploymentId === "") errors.deployment_id = "Enter the deployment ID.";
  else if (!isUuid(deploymentId)) errors.deployment_id = "A deployment ID is a UUID such as 01890a5d-ac96-774b-bcce-b302099a8057.";

  const directive = form.type === "" ? undefined : operatorDirective(Number(form.type) as DirectiveType);
  if (!directive) errors.type = "Choose a directive.";

  let intervalMs: number | null = null;
  if (directive?.type === DirectiveType.SET_INTERVAL) {
    const ms = durationValueToMs(form.interval);
    const { min, max } = HEARTBEAT_INTERVAL_RANGE_MS;
    if (ms === null) errors.heartbeat_interval = "Enter the interval as a number, such as 30 or 1.5.";
    else if (ms < min || ms > max) errors.heartbeat_interval = `The interval must be between ${formatElapsed(min)} and ${formatElapsed(max)}.`;
    else intervalMs = ms;
  }

  const reason = form.reason.trim();
  if (reason.length > MAX_REASON_LENGTH) errors.reason = `A reason is at most ${MAX_REASON_LENGTH} characters (this one has ${reason.length}).`;
  else {
    const problem = plainTextProblem("The reason", reason, { multiline: true });
    if (problem) errors.reason = `${problem}. Remove it and try again.`;
  }

  if (Object.keys(errors).length > 0 || !directive) return { ok: false, errors };
  return {
    ok: true,
    directive,
    intervalMs,
    request: {
      deploymentId,
      type: directive.type,
      ...(intervalMs === null ? {} : { heartbeatInterval: durationFromMs(intervalMs) }),
      reason,
    },
  };
}

/** What became of a sent directive, in a sentence. */
export function directiveOutcomeText(label: string, delivered: boolean): string {
  return delivered
    ? `${label} was delivered now: the box holds its stream and has been sent it.`
    : `${label} is queued: the box is not connected, and receives it when it next connects.`;
}
