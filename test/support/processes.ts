/**
 * Small helpers for tests that run the repository's commands as processes: run to completion
 * with captured output, or hold a long-running one and wait for a line of its output.
 */
import { type ChildProcess, spawn, type SpawnOptions } from "node:child_process";
import { createServer } from "node:net";
import { join } from "node:path";
import { REPO_ROOT } from "./cluster.js";

/** `buf` from node_modules (the CLI ships with @bufbuild/buf; no grpcurl needed). */
export const BUF = join(REPO_ROOT, "node_modules/.bin/buf");

/** What a finished command printed. */
export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (killed after `timeoutMs`, default 30 s), capturing its output. */
export function run(command: string, args: readonly string[], options: SpawnOptions & { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((done, fail) => {
    const child = spawn(command, args, { cwd: REPO_ROOT, ...options, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 30_000);
    child.once("error", (err) => {
      clearTimeout(timer);
      fail(err);
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      done({ code, signal, stdout, stderr });
    });
    child.stdin!.end(options.input ?? "");
  });
}

/** Runs a TypeScript entry point of the repository the way the scripts do (`node --conditions=source --import tsx`). */
export function runTs(entry: string, args: readonly string[], options: SpawnOptions & { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return run(process.execPath, ["--conditions=source", "--import", "tsx", join(REPO_ROOT, entry), ...args], options);
}

/** A long-running process whose combined output is collected as it arrives. */
export interface Held {
  readonly child: ChildProcess;
  /** Everything printed so far (stdout and stderr). */
  output(): string;
  /** Resolves with the output once `pattern` matches it (rejects on exit or after `timeoutMs`). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Resolves when the process exits. */
  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL if still running (teardown). */
  kill(): void;
}

const held = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of held) child.kill("SIGKILL");
});

/** Starts a process and holds it; kill it in teardown (it is also SIGKILLed if the test process exits). */
export function hold(command: string, args: readonly string[], options: SpawnOptions = {}): Held {
  const child = spawn(command, args, { cwd: REPO_ROOT, ...options, stdio: ["pipe", "pipe", "pipe"] });
  held.add(child);
  let output = "";
  const waiters = new Set<() => void>();
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
    child.once("exit", (code, signal) => {
      held.delete(child);
      done({ code, signal });
      for (const w of waiters) w();
    }),
  );
  const onData = (d: Buffer) => {
    output += d.toString();
    for (const w of waiters) w();
  };
  child.stdout!.on("data", onData);
  child.stderr!.on("data", onData);
  return {
    child,
    output: () => output,
    waitFor(pattern, timeoutMs = 30_000) {
      return new Promise((done, fail) => {
        const check = () => {
          if (pattern.test(output)) {
            finish();
            done(output);
          } else if (child.exitCode !== null || child.signalCode !== null) {
            finish();
            fail(new Error(`process exited (${child.signalCode ?? child.exitCode}) before printing ${pattern}\n${output.slice(-3_000)}`));
          }
        };
        const timer = setTimeout(() => {
          finish();
          fail(new Error(`no ${pattern} within ${timeoutMs} ms\n${output.slice(-3_000)}`));
        }, timeoutMs);
        const finish = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    exited: () => exit,
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    },
  };
}

/** Whether `port` can be bound on 127.0.0.1 right now. */
export function portIsFree(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((done) => {
    const probe = createServer();
    probe.once("error", () => done(false));
    probe.listen(port, host, () => probe.close(() => done(true)));
  });
}
