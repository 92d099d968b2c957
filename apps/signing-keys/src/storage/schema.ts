/**
 * The signing-keys storage module (the @lcp/persistence convention): every entity of the app's
 * database and its committed migrations per driver. Regenerate migrations after an entity change:
 *   DATABASE_URL=postgres://root@127.0.0.1:5432/test node --conditions=source --import tsx \
 *     libs/persistence/src/cli/migrations.ts create signing-keys <name>
 */
import { outboxEntities } from "@lcp/persistence";
import { ApplianceCaEntity, ChangeLockEntity, IssuedCertificateEntity, SigningKeyEntity } from "./entities.js";
import { migrations as postgresql } from "./migrations/postgresql/index.js";
import { migrations as sqlite } from "./migrations/sqlite/index.js";

/** Every table of the signing-keys database, the audit outbox included. */
export const entities = [SigningKeyEntity, ApplianceCaEntity, IssuedCertificateEntity, ChangeLockEntity, ...outboxEntities];

/** The committed migrations, one ordered list per driver. */
export const migrations = { sqlite, postgresql };
