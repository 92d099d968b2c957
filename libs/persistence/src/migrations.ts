import type { Database } from "./orm.js";

/** The SQL that would bring the database's schema in line with the entities (empty when up to date). */
export interface SchemaDrift {
  up: string[];
  down: string[];
}

/**
 * Diffs the entities of `db` against its (migrated) database and returns the statements needed,
 * schema-neutral: on PostgreSQL the app's schema qualifier is removed, because committed migrations
 * run with `search_path` set to whichever schema the app is configured with.
 */
export async function schemaDrift(db: Database): Promise<SchemaDrift> {
  const generator = db.orm.getSchemaGenerator();
  const diff = await generator.getUpdateSchemaMigrationSQL({ wrap: false, safe: false, dropTables: true, ...(db.schema ? { schema: db.schema } : {}) });
  return { up: splitStatements(diff.up, db.schema), down: splitStatements(diff.down, db.schema) };
}

/**
 * Throws when the committed migrations do not produce exactly the schema the entities describe,
 * naming the missing statements and the command that generates them. Each app's test suite calls
 * it on both drivers, so an entity change without its migration fails `npm test`.
 */
export async function assertMigrationsUpToDate(db: Database, _entities?: readonly unknown[]): Promise<void> {
  // `_entities` is accepted for call-site readability only: the diff uses the entities `db` was opened with.
  const app = db.app;
  const drift = await schemaDrift(db);
  if (drift.up.length > 0) {
    throw new Error(
      `The ${db.driver} migrations are behind the entities. Missing:\n  ${drift.up.join("\n  ")}\n` +
        `Generate them with: node --conditions=source --import tsx libs/persistence/src/cli/migrations.ts create ${app} <name>`,
    );
  }
}

function splitStatements(sql: string, schema: string | undefined): string[] {
  const out: string[] = [];
  for (const raw of sql.split(/;\s*\n/)) {
    let stmt = raw.trim().replace(/;$/, "");
    if (!stmt) continue;
    if (schema) {
      // The schema itself is created by createOrm (its name differs per deployment and test).
      if (/^(create|drop) schema (if (not )?exists )?"?\w+"?$/i.test(stmt)) continue;
      stmt = stmt.split(`"${schema}".`).join("");
    }
    out.push(`${stmt};`);
  }
  return out;
}
