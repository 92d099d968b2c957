/**
 * The audit app's storage as the migrations CLI and `createOrm` see it: its entities and its
 * committed migrations per driver (libs/persistence README "Storage module convention"). The audit app has no
 * outbox: it is where outboxes deliver to, and it appends its own events directly.
 *
 * The first migration is hand-edited beyond what the CLI generates: it also inserts the chain
 * head row (seq 0, genesis hash) that every append locks.
 */
import type { AppMigrations } from "@lcp/persistence";
import { auditEntities } from "./entities.js";
import { migrations as postgresql } from "./migrations/postgresql/index.js";
import { migrations as sqlite } from "./migrations/sqlite/index.js";

/** Every entity of the audit app. */
export const entities = auditEntities;
/** The committed migrations, one ordered list per driver. */
export const migrations: AppMigrations = { sqlite, postgresql };
