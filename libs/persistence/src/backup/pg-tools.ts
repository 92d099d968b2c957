/**
 * Running PostgreSQL's own client tools (pg_dump, pg_restore, psql) for backups: found on PATH,
 * given the connection without its password on the command line (the password goes through
 * PGPASSWORD, so `ps` never shows it), their stderr kept (bounded) for the error message.
 */
import { spawn, type ChildProcess } from "node:child_process";

/** How much of a tool's stderr an error message quotes. */
const STDERR_TAIL = 2_000;

/** A libpq connection string and environment for `databaseUrl`: no password and no `?schema=` in the URL. */
export function libpqConnection(databaseUrl: string): { url: string; env: NodeJS.ProcessEnv } {
  const u = new URL(databaseUrl);
  // Our own parameter (createOrm reads the schema elsewhere); libpq refuses unknown ones.
  u.searchParams.delete("schema");
  const password = decodeURIComponent(u.password);
  u.password = "";
  return { url: u.toString(), env: { ...process.env, ...(password ? { PGPASSWORD: password } : {}) } };
}

/** A started tool: its process and a promise of its end (rejects with its stderr on a non-zero exit). */
export interface ToolRun {
  child: ChildProcess;
  done: Promise<void>;
}

/** Starts `tool` with `args`; stdout is piped unless `stdout: "ignore"`. */
export function runTool(tool: string, args: string[], env: NodeJS.ProcessEnv, options: { stdin?: "pipe" | "ignore"; stdout?: "pipe" | "ignore" } = {}): ToolRun {
  const child = spawn(tool, args, { env, stdio: [options.stdin ?? "ignore", options.stdout ?? "pipe", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-STDERR_TAIL);
  });
  const done = new Promise<void>((resolve, reject) => {
    child.once("error", (err: NodeJS.ErrnoException) =>
      reject(new Error(err.code === "ENOENT" ? `${tool} not found on PATH (install the PostgreSQL client tools, version 15 or later)` : `${tool}: ${err.message}`)),
    );
    child.once("close", (code, signal) =>
      code === 0 ? resolve() : reject(new Error(`${tool} failed (${signal ?? `exit ${code}`}): ${stderr.trim() || "no output"}`)),
    );
  });
  return { child, done };
}

/** Runs `tool` to completion and returns its stdout. */
export async function toolOutput(tool: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  const run = runTool(tool, args, env);
  let out = "";
  run.child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  await run.done;
  return out;
}
