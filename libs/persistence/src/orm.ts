import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { EntityManager as CoreEntityManager, EntitySchema, MigrationObject, Options } from "@mikro-orm/core";
import type { EntityManager, MikroORM } from "@mikro-orm/knex";
import pg from "pg";
import { boundDriverFor } from "./bound-statements.js";

/** The two supported drivers: SQLite (embedded default) and PostgreSQL (`DATABASE_URL`). */
export type DriverName = "sqlite" | "postgresql";

/**
 * A pino-compatible logger subset. Everything in this package logs through it (or not at all),
 * so apps decide where storage logs go.
 */
export interface PersistenceLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug?(obj: object, msg?: string): void;
}

/** The committed migrations of one app, one ordered list per driver (classes, not a glob, so they bundle). */
export interface AppMigrations {
  sqlite: MigrationObject[];
  postgresql: MigrationObject[];
}

/** Entities are `defineEntity(...)`/`EntitySchema` instances (no decorators: tsx/esbuild emit no metadata). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyEntity = EntitySchema<any, any>;

/** Options for {@link createOrm}. */
export interface CreateOrmOptions {
  /** App name, e.g. `signing-keys`: names the SQLite file and the default PostgreSQL schema. */
  app: string;
  /** `postgres://…`/`postgresql://…` selects PostgreSQL; unset selects SQLite under `dataDir`. */
  databaseUrl?: string | undefined;
  /** Data folder; the SQLite file is `<dataDir>/<app>.sqlite`. */
  dataDir: string;
  entities: AnyEntity[];
  migrations: AppMigrations;
  /** PostgreSQL schema for this app (default: app name with `-` → `_`). Ignored on SQLite. */
  schema?: string | undefined;
  logger?: PersistenceLogger | undefined;
  /** Connection pool size limits (PostgreSQL; SQLite always uses one connection). */
  pool?: { min?: number; max?: number } | undefined;
  /** Run committed migrations on start (default true). The migrations CLI turns it off. */
  migrate?: boolean | undefined;
}

/** An initialised ORM for one app, with the helpers services use. */
export interface Database {
  /** The app name given to {@link createOrm}. */
  app: string;
  orm: MikroORM;
  driver: DriverName;
  /** The PostgreSQL schema the app's tables live in (undefined on SQLite). */
  schema: string | undefined;
  /** The SQLite database file (undefined on PostgreSQL): for a connection of another thread ({@link createSqliteStatementThread}). */
  sqliteFile: string | undefined;
  /** A fresh EntityManager fork (the global one is never used: `allowGlobalContext: false`). */
  em(): EntityManager;
  /** Runs `fn` in a transaction on a fresh fork; flushes and commits when it resolves, rolls back when it throws. */
  transactional<T>(fn: (em: EntityManager) => Promise<T>): Promise<T>;
  /** Closes the connection pool. Idempotent. */
  close(): Promise<void>;
}

/**
 * Lets pending I/O callbacks run before the next statement. SQLite (better-sqlite3) executes on
 * the caller's thread and an awaited query resolves in the same turn, so a loop of statements
 * would otherwise hold the event loop — and every socket — for all of them; call this between
 * the batches of a long background job.
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** A configuration problem (bad `DATABASE_URL`, bad schema name). Thrown before anything connects. */
export class DatabaseConfigError extends Error {
  override name = "DatabaseConfigError";
}

/** Which driver a `DATABASE_URL` selects; throws {@link DatabaseConfigError} for anything else. */
export function driverForUrl(databaseUrl: string | undefined): DriverName {
  if (databaseUrl === undefined || databaseUrl === "") return "sqlite";
  let protocol: string;
  try {
    protocol = new URL(databaseUrl).protocol;
  } catch {
    throw new DatabaseConfigError(`DATABASE_URL is not a valid URL (expected postgres://user@host:port/database)`);
  }
  if (protocol === "postgres:" || protocol === "postgresql:") return "postgresql";
  throw new DatabaseConfigError(
    `DATABASE_URL has unsupported scheme "${protocol}" (expected postgres:// or postgresql://; unset it to use SQLite under the data folder)`,
  );
}

/** The default PostgreSQL schema of an app: `signing-keys` → `signing_keys`. */
export function defaultSchemaFor(app: string): string {
  return app.replace(/-/g, "_");
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** How long a SQLite writer waits for the file lock before failing with SQLITE_BUSY. */
const SQLITE_BUSY_TIMEOUT_MS = 10_000;

/**
 * How every app connection to SQLite is set up: WAL so readers never block the writer,
 * busy_timeout so a second process (another app instance, a CLI) waits for the lock instead of
 * failing at once, foreign keys on because SQLite leaves them off by default, and a commit that
 * syncs only at checkpoints (WAL keeps it atomic). Exported so a benchmark's baseline connection
 * is set up exactly as the apps' are.
 */
export const SQLITE_CONNECTION_PRAGMAS: readonly string[] = [
  "journal_mode = WAL",
  `busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`,
  "foreign_keys = ON",
  "synchronous = NORMAL",
];

/**
 * Builds the MikroORM options for an app without connecting. Used by {@link createOrm} and by the
 * migrations CLI (which needs the same mapping for both drivers).
 */
export async function buildOrmOptions(options: CreateOrmOptions): Promise<{ driver: DriverName; schema: string | undefined; config: Options }> {
  const driver = driverForUrl(options.databaseUrl);
  const common = {
    entities: options.entities,
    // Entities are defineEntity schemas, so discovery must never look for decorators or files.
    discovery: { warnWhenNoEntities: false, disableDynamicFileAccess: true },
    allowGlobalContext: false,
    debug: false,
    logger: (message: string) => options.logger?.debug?.({ component: "mikro-orm" }, message),
    // Serialisation of bigint PKs and Dates stays the driver's business; we never want MikroORM
    // to sniff tsconfig/ts-node in production.
    preferTs: false,
  } satisfies Partial<Options>;
  // knex writes a failed statement into the error message with its values formatted in;
  // with this off it writes the statement with placeholders, so no value reaches an error or a log.
  const knexOptions = { compileSqlOnError: false };
  const migrations = (list: MigrationObject[], schema: string | undefined) => ({
    migrationsList: list,
    // No snapshot files: a running app must never write into its source tree, and the CLI
    // diffs against a scratch database migrated from the committed files instead.
    snapshot: false,
    silent: true,
    transactional: true,
    allOrNothing: true,
    tableName: schema ? `${schema}.mikro_orm_migrations` : "mikro_orm_migrations",
  });

  if (driver === "sqlite") {
    mkdirSync(options.dataDir, { recursive: true });
    return {
      driver,
      schema: undefined,
      config: {
        ...common,
        // Statements bind their values (bound-statements.ts): MikroORM's own drivers inline them.
        driver: await boundDriverFor(driver),
        driverOptions: knexOptions,
        dbName: join(options.dataDir, `${options.app}.sqlite`),
        migrations: migrations(options.migrations.sqlite, undefined),
        pool: {
          afterCreate: (conn: { pragma(sql: string): unknown }, done: (err: Error | null, conn: unknown) => void) => {
            try {
              for (const pragma of SQLITE_CONNECTION_PRAGMAS) conn.pragma(pragma);
              done(null, conn);
            } catch (err) {
              done(err as Error, conn);
            }
          },
        },
      } as Options,
    };
  }

  const schema = options.schema ?? defaultSchemaFor(options.app);
  if (!SCHEMA_NAME.test(schema)) {
    throw new DatabaseConfigError(`PostgreSQL schema name "${schema}" is invalid (lowercase letters, digits and _ only)`);
  }
  return {
    driver,
    schema,
    config: {
      ...common,
      driver: await boundDriverFor(driver),
      clientUrl: stripSchemaParam(options.databaseUrl!),
      schema,
      migrations: migrations(options.migrations.postgresql, schema),
      pool: { min: options.pool?.min ?? 0, max: options.pool?.max ?? 10 },
      // search_path too, so raw SQL in an app (and the unqualified names in committed migrations)
      // resolves to the app's own schema and never to another app's tables.
      driverOptions: { ...knexOptions, connection: { options: `-c search_path=${schema}` } },
    } as Options,
  };
}

/** MikroORM reads `?schema=` from the URL and would override ours; the app decides its schema. */
function stripSchemaParam(url: string): string {
  const u = new URL(url);
  u.searchParams.delete("schema");
  return u.toString();
}

/**
 * Opens the app's database and brings it up to date with the committed migrations.
 *
 * - no `databaseUrl` → SQLite file `<dataDir>/<app>.sqlite` (WAL, busy_timeout, foreign keys);
 * - `postgres://…` → PostgreSQL, the app's tables (and its migrations table) in its own schema,
 *   created if missing, so one DATABASE_URL serves all apps without any reading another's tables;
 * - anything else → {@link DatabaseConfigError} naming DATABASE_URL.
 *
 * On PostgreSQL, concurrent starts of several replicas serialise their migrations on an advisory
 * lock, so two replicas never apply the same migration twice.
 */
export async function createOrm(options: CreateOrmOptions): Promise<Database> {
  const { driver, schema, config } = await buildOrmOptions(options);
  const { MikroORM } = await import("@mikro-orm/core");
  const { Migrator } = await import("@mikro-orm/migrations");
  const orm = (await MikroORM.init({ ...config, extensions: [Migrator] })) as unknown as MikroORM;
  try {
    if (options.migrate !== false) {
      await runMigrations(orm, driver, schema, options);
    }
  } catch (err) {
    await orm.close(true);
    throw err;
  }
  let closed: Promise<void> | undefined;
  return {
    app: options.app,
    orm,
    driver,
    schema,
    sqliteFile: driver === "sqlite" ? (config.dbName as string) : undefined,
    em: () => orm.em.fork() as EntityManager,
    transactional: <T>(fn: (em: EntityManager) => Promise<T>) =>
      orm.em.fork().transactional((em) => fn(em as EntityManager)) as Promise<T>,
    close: () => (closed ??= orm.close(true)),
  };
}

async function runMigrations(orm: MikroORM, driver: DriverName, schema: string | undefined, options: CreateOrmOptions): Promise<void> {
  const migrate = async () => {
    const applied = await orm.getMigrator().up();
    if (applied.length > 0) {
      options.logger?.info({ app: options.app, driver, schema, migrations: applied.map((m) => m.name) }, "database migrated");
    }
  };
  if (driver === "sqlite") {
    await migrate();
    return;
  }
  // A dedicated connection holds a session advisory lock for the whole migration, so replicas
  // starting together take turns: the second sees the migrations already applied.
  const lock = new pg.Client({ connectionString: options.databaseUrl });
  await lock.connect();
  try {
    await lock.query("select pg_advisory_lock(hashtext($1))", [`lcp:migrate:${schema}`]);
    await lock.query(`create schema if not exists "${schema}"`);
    await migrateWhileOthersChange(migrate);
  } finally {
    await lock.query("select pg_advisory_unlock(hashtext($1))", [`lcp:migrate:${schema}`]).catch(() => undefined);
    await lock.end().catch(() => undefined);
  }
}

/** Type of the core EntityManager, re-exported so callers need not import MikroORM to type a parameter. */
export type AnyEntityManager = CoreEntityManager;

// PostgreSQL: schema or table that vanished (invalid_schema_name, undefined_table).
const VANISHED = new Set(["3F000", "42P01"]);

/**
 * The migrator reads the whole database's catalogue (every schema's tables, each cast to
 * `regclass`) before it looks at ours. Another app or tenant dropping a schema at that moment
 * fails the scan with "schema … does not exist" although nothing of ours is wrong, so the scan
 * is tried again a few times; any other error, or the same one three times, is the answer.
 */
async function migrateWhileOthersChange(migrate: () => Promise<void>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await migrate();
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (attempt >= 3 || typeof code !== "string" || !VANISHED.has(code)) throw err;
      await new Promise((resolve) => setTimeout(resolve, 50 * attempt));
    }
  }
}
