import {
  ConnectionException,
  DeadlockException,
  LockWaitTimeoutException,
  UniqueConstraintViolationException,
} from "@mikro-orm/core";

// MikroORM wraps driver errors in its own exception classes, but errors from raw knex/pg/sqlite
// calls (and from pool acquisition) arrive unwrapped, so each check looks at both the class and
// the driver's codes, following `cause` chains.

function* chain(err: unknown): Generator<Record<string, unknown>> {
  let cur: unknown = err;
  for (let depth = 0; depth < 5 && cur && typeof cur === "object"; depth++) {
    yield cur as Record<string, unknown>;
    cur = (cur as { cause?: unknown }).cause;
  }
}

const codeOf = (e: Record<string, unknown>) => (typeof e.code === "string" ? e.code : undefined);

/** True when the database refused a write because a unique key (or primary key) already exists. */
export function isUniqueViolation(err: unknown): boolean {
  for (const e of chain(err)) {
    if (e instanceof UniqueConstraintViolationException) return true;
    const code = codeOf(e);
    if (code === "23505" || code === "SQLITE_CONSTRAINT_UNIQUE" || code === "SQLITE_CONSTRAINT_PRIMARYKEY") return true;
  }
  return false;
}

const PG_CONNECTION_CODES = new Set(["57P01", "57P02", "57P03", "53300"]);
const NODE_NET_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ENOTFOUND", "ETIMEDOUT", "EPIPE", "EHOSTUNREACH", "EAI_AGAIN"]);

/**
 * True when the database could not be reached (refused, reset, shut down, pool exhausted).
 * Services map it to Connect `Unavailable` so callers retry instead of treating it as a bug.
 */
export function isConnectionError(err: unknown): boolean {
  for (const e of chain(err)) {
    if (e instanceof ConnectionException) return true;
    const code = codeOf(e);
    if (code && (NODE_NET_CODES.has(code) || PG_CONNECTION_CODES.has(code) || code.startsWith("08"))) return true;
    if (code === "SQLITE_CANTOPEN") return true;
    const name = typeof e.name === "string" ? e.name : "";
    const message = typeof e.message === "string" ? e.message : "";
    if (name === "KnexTimeoutError") return true;
    if (/Connection terminated|Client has encountered a connection error|connect ECONNREFUSED/.test(message)) return true;
  }
  return false;
}

/**
 * True when the transaction lost a race and is safe to retry as a whole: PostgreSQL serialization
 * failure or deadlock, a lock wait timeout, or SQLite still busy after its busy_timeout.
 */
export function isSerializationFailure(err: unknown): boolean {
  for (const e of chain(err)) {
    if (e instanceof DeadlockException || e instanceof LockWaitTimeoutException) return true;
    const code = codeOf(e);
    if (code === "40001" || code === "40P01" || code === "55P03") return true;
    if (code === "SQLITE_BUSY" || code === "SQLITE_BUSY_SNAPSHOT" || code === "SQLITE_LOCKED") return true;
  }
  return false;
}
