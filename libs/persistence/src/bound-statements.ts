import { Configuration, JsonProperty, Utils, type Constructor, type Transaction } from "@mikro-orm/core";
import { AbstractSqlDriver, type AbstractSqlConnection, type AbstractSqlPlatform } from "@mikro-orm/knex";
import type { DriverName } from "./orm.js";

// MikroORM 6 runs every statement — entity flushes, finds, QueryBuilder and `em.execute(sql,
// params)` alike — through `AbstractSqlConnection.execute`, which formats the parameters INTO
// the statement text (`platform.formatQuery`) and sends that text without parameters. Values
// then travel as SQL: a NUL byte ends PostgreSQL's NUL-terminated Query message ("invalid
// message format", a protocol violation), breaks SQLite's tokenizer, and every error or log
// line carries the values. No setting turns that off, so the drivers below replace `execute`
// with one that sends the same statement with placeholders and the values bound.

/** A statement with `?` placeholders (knex's form) and its bound values. */
export interface BoundStatement {
  sql: string;
  bindings: unknown[];
}

/**
 * Turns MikroORM's `(sql, params)` into a statement knex binds rather than formats: the same
 * tokens `Platform.formatQuery` recognises (`?` a value, `??` an identifier, `\?` a literal
 * question mark), each value converted to what the driver would have inlined for it (dates
 * as the platform writes them, objects as JSON, arrays as lists), but passed as a bound value.
 */
export function bindStatement(platform: AbstractSqlPlatform, driver: DriverName, sql: string, params: readonly unknown[]): BoundStatement {
  const bindings: unknown[] = [];
  return { sql: splice(platform, driver, sql, params, bindings), bindings };
}

function splice(platform: AbstractSqlPlatform, driver: DriverName, sql: string, params: readonly unknown[], bindings: unknown[]): string {
  let out = "";
  let next = 0;
  for (let i = 0; i < sql.length; i++) {
    const ch = sql[i];
    if (ch === "\\" && sql[i + 1] === "?") {
      // knex keeps `\?` as a literal question mark (PostgreSQL's jsonb operators need it).
      out += "\\?";
      i++;
    } else if (ch === "?" && sql[i + 1] === "?") {
      out += platform.quoteIdentifier(String(params[next++]));
      i++;
    } else if (ch === "?") {
      out += bindValue(platform, driver, params[next++], bindings);
    } else {
      out += ch;
    }
  }
  return out;
}

function bindValue(platform: AbstractSqlPlatform, driver: DriverName, value: unknown, bindings: unknown[]): string {
  if (value === undefined || value === null) {
    bindings.push(null);
    return "?";
  }
  if (Utils.isRawSql(value)) {
    // A raw fragment is SQL by intent; its own parameters are values like any other.
    return splice(platform, driver, value.sql, value.params ?? [], bindings);
  }
  if (platform.isRaw(value)) {
    const q = (value as { toSQL(): { sql: string; bindings?: readonly unknown[] } }).toSQL();
    return splice(platform, driver, q.sql, q.bindings ?? [], bindings);
  }
  if (Array.isArray(value)) {
    // Both platforms inline an array as a comma list (`in (?)` with [1, 2] → `in (1, 2)`); SQLite's
    // escaper wraps nested arrays in parentheses, PostgreSQL's flattens them.
    return value
      .map((v) => (Array.isArray(v) && driver === "sqlite" ? `(${bindValue(platform, driver, v, bindings)})` : bindValue(platform, driver, v, bindings)))
      .join(", ");
  }
  bindings.push(toBindable(platform, driver, value));
  return "?";
}

function toBindable(platform: AbstractSqlPlatform, driver: DriverName, value: unknown): unknown {
  if (value instanceof Date) {
    // The exact text (PostgreSQL) or epoch number (SQLite) the platform used to inline.
    return driver === "sqlite" ? value.getTime() : (platform as unknown as { formatDate(d: Date): string }).formatDate(value);
  }
  if (ArrayBuffer.isView(value)) return value;
  if (typeof value === "object" && (Utils.isPlainObject(value) || (value as Record<symbol, unknown>)[JsonProperty])) return JSON.stringify(value);
  return value;
}

// Properties of a driver error that carry row values (PostgreSQL's `detail` repeats the key of a
// unique violation, `where`/`internalQuery` quote statements), dropped before the error travels.
const VALUE_FIELDS = ["detail", "where", "internalQuery", "parameters", "bindings", "params"] as const;

/** Strips value-carrying fields from a driver error in place (see {@link VALUE_FIELDS}). */
function withoutValues(err: unknown): unknown {
  if (err && typeof err === "object") {
    for (const field of VALUE_FIELDS) if (field in err) delete (err as Record<string, unknown>)[field];
  }
  return err;
}

type SqlConnectionClass = Constructor<AbstractSqlConnection>;

/** What the binding `execute` uses of MikroORM's (otherwise protected) connection internals. */
interface ConnectionInternals {
  ensureConnection(): Promise<void>;
  config: Configuration;
  platform: AbstractSqlPlatform;
  getKnex(): AbstractSqlConnection["getKnex"] extends () => infer K ? K : never;
  executeQuery<T>(query: string, cb: () => Promise<T>, context?: Record<string, unknown>): Promise<T>;
  transformRawResult<T>(res: unknown, method: "all" | "get" | "run"): T;
}

/** A knex builder or raw handed to `execute` instead of a string. */
interface KnexStatement {
  toSQL(): { sql: string; bindings?: readonly unknown[] };
  client?: { transacting?: boolean };
}

function bindingConnection(Base: SqlConnectionClass, driver: DriverName): SqlConnectionClass {
  // The base is one of MikroORM's two concrete connections; only `execute` changes.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const Concrete = Base as unknown as new (...args: any[]) => object;
  return class extends Concrete {
    async execute<T>(
      queryOrKnex: string | KnexStatement,
      params: unknown[] = [],
      method: "all" | "get" | "run" = "all",
      ctx?: Transaction,
      loggerContext?: Record<string, unknown>,
    ): Promise<T> {
      const self = this as unknown as ConnectionInternals;
      await self.ensureConnection();
      let sql: string;
      if (typeof queryOrKnex === "string") {
        sql = queryOrKnex;
      } else {
        ctx ??= (queryOrKnex.client?.transacting ? queryOrKnex : undefined) as Transaction | undefined;
        const q = queryOrKnex.toSQL();
        sql = q.sql;
        params = [...(q.bindings ?? [])];
      }
      sql = self.config.get("onQuery")(sql, params);
      const statement = bindStatement(self.platform, driver, sql, params);
      // The query log (when enabled) gets the statement with placeholders, never the values.
      return self.executeQuery(
        statement.sql,
        async () => {
          const query = self.getKnex().raw(statement.sql, statement.bindings as never);
          if (ctx) query.transacting(ctx as never);
          try {
            return self.transformRawResult<T>(await query, method);
          } catch (err) {
            throw withoutValues(err);
          }
        },
        { query: statement.sql, ...loggerContext },
      );
    }
  } as unknown as SqlConnectionClass;
}

/**
 * The MikroORM driver class for `driver` whose every statement binds its values instead of
 * formatting them into the SQL text (see the note at the top of this file). Loaded lazily so
 * an app on SQLite never loads `pg`, and the reverse.
 */
export async function boundDriverFor(driver: DriverName): Promise<Constructor<AbstractSqlDriver>> {
  if (driver === "sqlite") {
    const { BetterSqliteConnection, BetterSqlitePlatform } = await import("@mikro-orm/better-sqlite");
    const Connection = bindingConnection(BetterSqliteConnection as unknown as SqlConnectionClass, driver);
    return class BoundBetterSqliteDriver extends AbstractSqlDriver {
      constructor(config: Configuration) {
        super(config, new BetterSqlitePlatform(), Connection, ["knex", "better-sqlite3"]);
      }
    };
  }
  const { PostgreSqlConnection, PostgreSqlPlatform } = await import("@mikro-orm/postgresql");
  const Connection = bindingConnection(PostgreSqlConnection as unknown as SqlConnectionClass, driver);
  return class BoundPostgreSqlDriver extends AbstractSqlDriver {
    constructor(config: Configuration) {
      super(config, new PostgreSqlPlatform(), Connection, ["knex", "pg"]);
    }
  };
}
