/**
 * Runs the repository's TypeScript entry points as processes, the way the npm scripts do
 * (`node --conditions=source --import tsx <entry>`), for tests of the CLIs and the dev-idp process.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (tools/dev-idp/test/ is three levels down). */
export const REPO_ROOT = resolve(fileURLToPath(import.meta.url), "../../../..");

/** What a finished process printed. */
export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A running process whose output is collected. */
export interface Running {
  readonly child: ChildProcess;
  output(): string;
  /** Resolves with all output once `pattern` matches it; rejects if the process exits first or after `timeoutMs`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  exited(): Promise<Finished>;
}

/** Environment for a child: the test runner's, without what would change how a tool runs. */
export function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === "NODE_OPTIONS" || k.startsWith("VITEST") || k.startsWith("OIDC_") || k === "NODE_ENV") continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

/** Starts `entry` (relative to the repository root) with `args` and `env`. */
export function start(entry: string, args: readonly string[], env: NodeJS.ProcessEnv): Running {
  const child = spawn(process.execPath, ["--conditions=source", "--import", "tsx", resolve(REPO_ROOT, entry), ...args], { cwd: REPO_ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  const waiters = new Set<() => void>();
  child.stdout!.on("data", (d: Buffer) => {
    stdout += d.toString();
    for (const w of waiters) w();
  });
  child.stderr!.on("data", (d: Buffer) => {
    stderr += d.toString();
    for (const w of waiters) w();
  });
  const exit = new Promise<Finished>((done) => child.once("close", (code, signal) => done({ code, signal, stdout, stderr })));
  void exit.then(() => {
    for (const w of waiters) w();
  });
  const killer = setTimeout(() => child.kill("SIGKILL"), 120_000);
  void exit.then(() => clearTimeout(killer));
  return {
    child,
    output: () => stdout + stderr,
    waitFor(pattern, timeoutMs = 60_000) {
      return new Promise((done, fail) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          fail(new Error(`no ${pattern} within ${timeoutMs} ms\n${stdout}${stderr}`));
        }, timeoutMs);
        const check = () => {
          if (pattern.test(stdout + stderr)) {
            clearTimeout(timer);
            waiters.delete(check);
            done(stdout + stderr);
          } else if (child.exitCode !== null || child.signalCode !== null) {
            clearTimeout(timer);
            waiters.delete(check);
            fail(new Error(`exited (${child.signalCode ?? child.exitCode}) before ${pattern}\n${stdout}${stderr}`));
          }
        };
        waiters.add(check);
        check();
      });
    },
    exited: () => exit,
  };
}

/** Runs `entry` to completion. */
export function run(entry: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<Finished> {
  return start(entry, args, env).exited();
}
