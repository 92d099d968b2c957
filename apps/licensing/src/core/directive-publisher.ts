/**
 * The seam between a committed change and a box's live connection: after a transaction that wrote
 * directives commits, licensing hands them to the publisher. The default does nothing (the rows
 * are in the `directive` table and are redelivered when the box next connects); the heartbeat
 * stream hub implements it to push to a connected box, and across replicas through
 * PostgreSQL LISTEN/NOTIFY.
 */
import type { Directive } from "@lcp/proto/licensing/v1/types_pb";

/** Pushes freshly committed directives to a box if it is connected. Must not throw. */
export interface DirectivePublisher {
  /**
   * Called once per committed change, after commit, with the directives (oldest first) written
   * for `deploymentId`. Returns whether they were pushed to a connected box now.
   */
  publish(deploymentId: string, directives: readonly Directive[]): boolean | Promise<boolean>;
}

/** The publisher used until a stream hub is wired: nothing is connected, so nothing is pushed. */
export const noopDirectivePublisher: DirectivePublisher = {
  publish: () => false,
};
