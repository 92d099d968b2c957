/**
 * The product page's whole story across the four real processes, over TLS/mTLS, on SQLite and
 * (when DATABASE_URL is set) PostgreSQL: provision with an auto-issued licence → an appliance on
 * `@lcp/appliance-sdk` activates → subscription INVALID → SUSPENDED → VALID → ACTIVE → revoke →
 * LOCKED and activation refused for ever, the box locking itself → on another deployment a new
 * box after rebind activates → sweep → the audit trail shows every step in order with its actor,
 * and VerifyChain is ok.
 *
 * The boxes hold the heartbeat stream throughout (settings shrunk to seconds, as an operator may on
 * licensing/settings): ListHeartbeats shows them connected with a small lag, every change reaches
 * the box as a directive (SUSPEND, REACTIVATE, LOCK within a second of the revoke), and the sweep
 * through licensing's Reconcile SUCCEEDS over the whole fleet and is idempotent.
 */
import { describe } from "vitest";
import { e2eDatabases, startCluster } from "../support/cluster.js";
import { theSeedStory } from "../support/seed-story.js";

describe.each(e2eDatabases())("the seed's story across real processes ($name)", ({ databaseUrl }) => {
  theSeedStory(() => startCluster({ databaseUrl }));
});
