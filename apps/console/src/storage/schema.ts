/**
 * The console's storage module (persistence convention): the entities and the committed
 * migrations per driver. Regenerate after an entity change with
 * `node --conditions=source --import tsx libs/persistence/src/cli/migrations.ts create console <name>`.
 */
import { ConsoleSessionEntity, PendingLoginEntity } from "./entities.js";
import { migrations as postgresql } from "./migrations/postgresql/index.js";
import { migrations as sqlite } from "./migrations/sqlite/index.js";

/** Every console entity. The console has no audit outbox: it decides nothing the services do not audit. */
export const entities = [ConsoleSessionEntity, PendingLoginEntity];

/** The committed migrations, one chain per driver. */
export const migrations = { sqlite, postgresql };
