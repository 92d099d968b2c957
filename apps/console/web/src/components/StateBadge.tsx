/**
 * A deployment's derived state as a badge: a colour, an icon and the word, so the state reads
 * without colour (and in high-contrast modes); LOCKED names its reason.
 */
import { DeploymentState, LockReason } from "@lcp/proto/licensing/v1/types_pb";
import { LOCK_REASON_LABELS, STATE_LABELS, labelOf } from "../lib/format.js";

const CLASS: Readonly<Record<DeploymentState, string>> = {
  [DeploymentState.UNSPECIFIED]: "unknown",
  [DeploymentState.PENDING]: "pending",
  [DeploymentState.ACTIVE]: "active",
  [DeploymentState.GRACE]: "grace",
  [DeploymentState.SUSPENDED]: "suspended",
  [DeploymentState.LOCKED]: "locked",
};

function Icon({ state }: { state: DeploymentState }) {
  const common = { width: 14, height: 14, viewBox: "0 0 16 16", "aria-hidden": true, focusable: false, className: "badge-icon" } as const;
  switch (state) {
    case DeploymentState.ACTIVE:
      // A check mark.
      return (
        <svg {...common}>
          <path d="M3 8.5l3 3 7-7" fill="none" stroke="currentColor" strokeWidth="2" strokeLinecap="round" strokeLinejoin="round" />
        </svg>
      );
    case DeploymentState.PENDING:
      // An hourglass.
      return (
        <svg {...common}>
          <path d="M4 2h8M4 14h8M5 2c0 4 6 4 6 6s-6 2-6 6M11 2c0 4-6 4-6 6s6 2 6 6" fill="none" stroke="currentColor" strokeWidth="1.5" strokeLinecap="round" />
        </svg>
      );
    case DeploymentState.GRACE:
      // A clock.
      return (
        <svg {...common}>
          <circle cx="8" cy="8" r="6" fill="none" stroke="currentColor" strokeWidth="1.5" />
          <path d="M8 4.5V8l2.5 1.5" fill="none" stroke="currentColor" strokeWidth="1.5" strokeLinecap="round" />
        </svg>
      );
    case DeploymentState.SUSPENDED:
      // A pause sign.
      return (
        <svg {...common}>
          <path d="M5.5 3v10M10.5 3v10" fill="none" stroke="currentColor" strokeWidth="2.5" strokeLinecap="round" />
        </svg>
      );
    case DeploymentState.LOCKED:
      // A padlock.
      return (
        <svg {...common}>
          <rect x="3" y="7" width="10" height="7" rx="1" fill="currentColor" />
          <path d="M5 7V5a3 3 0 016 0v2" fill="none" stroke="currentColor" strokeWidth="1.5" />
        </svg>
      );
    default:
      return (
        <svg {...common}>
          <circle cx="8" cy="8" r="6" fill="none" stroke="currentColor" strokeWidth="1.5" />
        </svg>
      );
  }
}

/** The badge's text: "Active", "Locked (revoked)". */
export function stateText(state: DeploymentState, lockReason: LockReason = LockReason.UNSPECIFIED): string {
  const label = labelOf(STATE_LABELS, state);
  const reason = state === DeploymentState.LOCKED ? LOCK_REASON_LABELS[lockReason] : "";
  return reason ? `${label} (${reason})` : label;
}

/** A deployment state badge; see the module comment. */
export function StateBadge({ state, lockReason }: { state: DeploymentState; lockReason?: LockReason }) {
  return (
    <span className={`badge badge-${CLASS[state] ?? "unknown"}`}>
      <Icon state={state} />
      <span>{stateText(state, lockReason)}</span>
    </span>
  );
}
