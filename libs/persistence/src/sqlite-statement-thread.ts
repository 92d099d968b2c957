/**
 * SQLite statements run off the event loop. better-sqlite3 runs every statement synchronously on
 * the calling thread, disk waits included (a WAL autocheckpoint fsyncs the database inside the
 * COMMIT that crosses the threshold), so a background write that comes round every second — the
 * heartbeat's last-seen flush — holds every socket of the process for its whole length. This runs
 * such writes on a worker thread with a connection of its own to the same file (the apps'
 * pragmas, WAL: readers never wait; writers take turns under `busy_timeout`), each statement
 * autocommitted, as a second writer that the app's own transactions already handle: a read
 * snapshot overtaken by its commit is retried (`isSerializationFailure`).
 *
 * The worker is started on first use and again after it died; it does not keep the process alive.
 */
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import { SQLITE_CONNECTION_PRAGMAS } from "./orm.js";

/**
 * The worker: one connection to the file with the apps' pragmas, each request's statements run in
 * order (prepared once per distinct SQL), answered with their change counts or the first error. It
 * owns no logic: the SQL is the caller's. Plain JavaScript evaluated as the worker's script, so it
 * runs the same from sources (tsx, vitest) and built.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const Sqlite = require(workerData.driver);
const conn = new Sqlite(workerData.file);
for (const pragma of workerData.pragmas) conn.pragma(pragma);
const cache = new Map();
const prepared = (sql) => {
  let statement = cache.get(sql);
  if (statement === undefined) {
    if (cache.size >= 64) cache.clear();
    statement = conn.prepare(sql);
    cache.set(sql, statement);
  }
  return statement;
};
parentPort.on("message", (request) => {
  if (request === "close") {
    conn.close();
    parentPort.close();
    return;
  }
  let reply;
  try {
    reply = { id: request.id, changes: request.statements.map((s) => prepared(s.sql).run(...s.params).changes) };
  } catch (err) {
    reply = { id: request.id, error: { message: String(err && err.message || err), code: err && typeof err.code === "string" ? err.code : undefined } };
  }
  parentPort.postMessage(reply);
});
`;

/** One statement for the thread: SQL with `?` placeholders and its parameters (numbers, strings, null). */
export interface ThreadStatement {
  sql: string;
  params: unknown[];
}

/** The worker protocol. */
interface StatementRequest {
  id: number;
  statements: ThreadStatement[];
}

/** The worker protocol. */
type StatementReply = { id: number; changes: number[] } | { id: number; error: { message: string; code: string | undefined } };

/** The thread's error for a failed statement; `code` is SQLite's (SQLITE_BUSY …), as better-sqlite3 gives it. */
export class SqliteThreadError extends Error {
  override name = "SqliteThreadError";
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
  }
}

/** Statements run on a worker thread (see the module comment). */
export interface SqliteStatementThread {
  /** Runs the statements in order, each autocommitted; resolves with their change counts, rejects at the first that fails (the ones before it stay written). */
  run(statements: ThreadStatement[]): Promise<number[]>;
  /** Closes the worker's connection and stops it (after the requests already sent). Idempotent. */
  close(): Promise<void>;
}

/** Starts nothing yet: the worker opens `file` on the first `run`. */
export function createSqliteStatementThread(file: string): SqliteStatementThread {
  let worker: Worker | null = null;
  let nextId = 1;
  let closed: Promise<void> | null = null;
  const waiting = new Map<number, { resolve: (changes: number[]) => void; reject: (err: Error) => void }>();

  const failAll = (err: Error) => {
    for (const w of waiting.values()) w.reject(err);
    waiting.clear();
  };

  function start(): Worker {
    const w = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { file, pragmas: SQLITE_CONNECTION_PRAGMAS, driver: createRequire(import.meta.url).resolve("better-sqlite3") },
    });
    w.unref();
    w.on("message", (reply: StatementReply) => {
      const request = waiting.get(reply.id);
      if (!request) return;
      waiting.delete(reply.id);
      if ("error" in reply) request.reject(new SqliteThreadError(reply.error.message, reply.error.code));
      else request.resolve(reply.changes);
    });
    w.on("error", (err) => failAll(err));
    w.on("exit", (code) => {
      if (worker === w) worker = null;
      failAll(new SqliteThreadError(`the SQLite statement thread exited (code ${code})`, undefined));
    });
    return w;
  }

  return {
    run(statements) {
      if (closed) return Promise.reject(new SqliteThreadError("the SQLite statement thread is closed", undefined));
      worker ??= start();
      const id = nextId++;
      const request: StatementRequest = { id, statements };
      return new Promise<number[]>((resolve, reject) => {
        waiting.set(id, { resolve, reject });
        worker!.postMessage(request);
      });
    },
    close() {
      closed ??= (async () => {
        const w = worker;
        worker = null;
        if (!w) return;
        const exited = new Promise<void>((resolve) => w.once("exit", () => resolve()));
        w.postMessage("close");
        await exited;
      })();
      return closed;
    },
  };
}
