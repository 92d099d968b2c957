/**
 * Fleet-sweep's storage module (persistence convention): the entities, outbox included, and the
 * committed migrations per driver. Regenerate after an entity change with
 * `node --conditions=source --import tsx libs/persistence/src/cli/migrations.ts create fleet-sweep <name>`.
 */
import { outboxEntities } from "@lcp/persistence";
import { SweepLockEntity, SweepRunEntity } from "./entities.js";
import { migrations as postgresql } from "./migrations/postgresql/index.js";
import { migrations as sqlite } from "./migrations/sqlite/index.js";

/** Every fleet-sweep entity, outbox included. */
export const entities = [SweepRunEntity, SweepLockEntity, ...outboxEntities];

/** The committed migrations, one chain per driver. */
export const migrations = { sqlite, postgresql };
