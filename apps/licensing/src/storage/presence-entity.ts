/**
 * Which licensing replica holds which box's heartbeat stream right now (screen
 * licensing/heartbeats: "connected, and by which replica"). One row per open stream, written
 * and removed in the batched heartbeat flush (last-seen-writer.ts), never on the beat path.
 *
 * A replica that dies leaves its rows behind; the heartbeat screen therefore counts a box as
 * connected only while its last_seen is also within the heartbeat timeout, and a replica clears
 * the rows of its own id when it starts.
 */
import { defineEntity, p, type InferEntity } from "@mikro-orm/core";

/** The table name, for the writer's raw batched statements. */
export const PRESENCE_TABLE = "heartbeat_presence";

/** One open heartbeat stream. */
export const HeartbeatPresenceEntity = defineEntity({
  name: "HeartbeatPresence",
  tableName: PRESENCE_TABLE,
  properties: {
    /** Random per stream, so a box's reconnect never collides with its previous stream's row. */
    streamId: p.string().length(36).primary(),
    deploymentId: p.string().length(36).index(),
    /** The licensing replica holding the stream (`REPLICA_ID`). */
    replica: p.string().length(128).index(),
    connectedAt: p.datetime(),
    /** What the box said in its hello. */
    agentVersion: p.string().length(128),
  },
});

/** A presence row as the ORM hydrates it. */
export type HeartbeatPresenceRow = InferEntity<typeof HeartbeatPresenceEntity>;
