/**
 * What a response file will do to its box, in a sentence, from the OfflineAnswer licensing sent
 * beside it (docs/design.md §15), and the operator's next step: carry it back before its deadline.
 */
import type { OfflineAnswer } from "@lcp/proto/licensing/v1/licensing_service_pb";
import { DeploymentState, LockReason } from "@lcp/proto/licensing/v1/types_pb";
import { dateOf, formatDateTime } from "./format.js";

/** What the answer does to the box once it is imported, in one or two sentences. */
export function explainAnswer(answer: OfflineAnswer): string {
  const until = dateOf(answer.leaseExpireTime);
  const renew = dateOf(answer.renewTime);
  const lease = until ? ` Its lease runs until ${formatDateTime(until)}${renew ? `; the box asks for the next one from ${formatDateTime(renew)}` : ""}.` : "";
  switch (answer.state) {
    case DeploymentState.ACTIVE:
      return `The box runs once it imports this file.${lease}`;
    case DeploymentState.SUSPENDED:
      return `The box stays installed but stops its licensed work: the subscription is invalid.${lease}`;
    case DeploymentState.LOCKED: {
      const why =
        answer.lockReason === LockReason.REVOKED
          ? "its licence is revoked"
          : answer.lockReason === LockReason.EXPIRED
            ? "its licence term has ended"
            : answer.lockReason === LockReason.OFFLINE
              ? "its lease has run out"
              : "licensing refused it a lease";
      return `This answer locks the box: ${why}. Carry it back all the same, so the box stops.`;
    }
    default:
      return `The box takes the state licensing gave it.${lease}`;
  }
}
