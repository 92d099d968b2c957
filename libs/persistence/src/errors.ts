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

// PostgreSQL's class 08 also holds 08P01 protocol_violation, which a malformed statement causes
// and which fails the same way on every retry: only the codes of a lost or refused connection
// count, alongside the server going down (57P0x) or out of connection slots (53300).
const PG_CONNECTION_CODES = new Set(["08000", "08001", "08003", "08004", "08006", "08007", "57P01", "57P02", "57P03", "53300"]);
const NODE_NET_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ENOTFOUND", "ETIMEDOUT", "EPIPE", "EHOSTUNREACH", "EAI_AGAIN"]);
// node-postgres' own messages for a dropped or refused connection. Matched only at the start of the
// message or right after knex's "<statement> - " prefix, so text elsewhere in a message (a value
// quoted by the server) can never make an ordinary failure look like an outage.
const PG_CLIENT_CONNECTION_MESSAGE = /(?:^| - )(?:Connection terminated|Client has encountered a connection error|connect ECONNREFUSED)/;

/**
 * True when the database could not be reached (refused, reset, shut down, pool exhausted).
 * Services map it to Connect `Unavailable` so callers retry instead of treating it as a bug;
 * anything else a database raises (a refused value, a constraint, a protocol violation) is not
 * an outage and must stay Internal, or clients would retry it for ever.
 */
export function isConnectionError(err: unknown): boolean {
  for (const e of chain(err)) {
    if (e instanceof ConnectionException) return true;
    const code = codeOf(e);
    if (code && (NODE_NET_CODES.has(code) || PG_CONNECTION_CODES.has(code))) return true;
    if (code === "SQLITE_CANTOPEN") return true;
    const name = typeof e.name === "string" ? e.name : "";
    const message = typeof e.message === "string" ? e.message : "";
    if (name === "KnexTimeoutError") return true;
    if (PG_CLIENT_CONNECTION_MESSAGE.test(message)) return true;
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
