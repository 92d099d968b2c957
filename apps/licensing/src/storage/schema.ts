/**
 * Licensing's storage module, as the persistence convention wants it: the entities (the outbox
 * included, so one migration chain creates every table) and the committed migrations per driver.
 * Regenerate after an entity change with
 * `node --conditions=source --import tsx libs/persistence/src/cli/migrations.ts create licensing <name>`.
 */
import { outboxEntities } from "@lcp/persistence";
import {
  CertificateEntity,
  DeploymentEntity,
  DirectiveEntity,
  LicenseEntity,
  SettingsEntity,
} from "./entities.js";
import { HeartbeatPresenceEntity } from "./presence-entity.js";
import { migrations as postgresql } from "./migrations/postgresql/index.js";
import { migrations as sqlite } from "./migrations/sqlite/index.js";

/** Every licensing entity, outbox included. */
export const entities = [DeploymentEntity, LicenseEntity, SettingsEntity, CertificateEntity, DirectiveEntity, HeartbeatPresenceEntity, ...outboxEntities];

/** The committed migrations, one chain per driver. */
export const migrations = { sqlite, postgresql };
