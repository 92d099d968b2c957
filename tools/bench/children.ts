/**
 * Benches that run the apps as processes of their own, as they run in production: the bench
 * module forks itself with a role argument (`--serve-…`), tells the child what to start over IPC,
 * and stops it with SIGTERM.
 */
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

/** Forks the bench module at `moduleUrl` (its `import.meta.url`) as a child running `role`, from sources. */
export function forkBenchChild(moduleUrl: string, role: string, nodeFlags: readonly string[] = []): ChildProcess {
  return fork(fileURLToPath(moduleUrl), [role], {
    execArgv: ["--conditions=source", "--import", "tsx", "--expose-gc", ...nodeFlags],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
}

/** Sends `message` to a child and resolves with its next message; rejects if it exits first. */
export function ask<T>(child: ChildProcess, message: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`bench child exited with ${code}`));
    child.once("exit", onExit);
    child.once("message", (m) => {
      child.off("exit", onExit);
      resolve(m as T);
    });
    child.send(message as object);
  });
}

/** SIGTERMs a child and waits for it to exit. */
export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  child.kill("SIGTERM");
  await new Promise((resolve) => child.once("exit", resolve));
}
