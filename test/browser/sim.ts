/**
 * A simulated box for the browser tests: `tools/appliance-sim` as its own process, exactly as the
 * README runs it, fed the licence the operator copied off the New license screen. An air-gapped
 * box (`--offline <dir>`) writes its request files into a folder and imports the responses put
 * beside them when told `import` on its stdin, as an operator at the site would.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { BrowserClusterState } from "./state.js";

const REPO_ROOT = resolve(fileURLToPath(import.meta.url), "../../..");

/** A running simulator and what it has printed. */
export interface SimulatedBox {
  output(): string;
  /** Resolves when a line matching `pattern` has been printed (rejects after `timeoutMs`). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
  /** Types a command on the simulator's stdin (`import`, `renew`, `status`). */
  send(command: string): void;
  stop(): Promise<void>;
}

/** The claims of a licence token the tests need, read without verifying (the box verifies). */
export function licenseClaims(token: string): { licenseId: string; deploymentId: string } {
  const payload = JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString("utf8")) as { sub: string; dep: string };
  return { licenseId: payload.sub, deploymentId: payload.dep };
}

/**
 * Starts one box for `token` with fingerprint `<fingerprintPrefix>0`; with `offlineDir` it is
 * air-gapped and exchanges `<fingerprintPrefix>0.request` / `.response` files there.
 */
export function startBox(state: BrowserClusterState, token: string, name: string, fingerprintPrefix: string, options: { offlineDir?: string } = {}): SimulatedBox {
  const { licenseId } = licenseClaims(token);
  const child: ChildProcess = spawn(
    process.execPath,
    [
      "--conditions=source",
      "--import",
      "tsx",
      join(REPO_ROOT, "tools/appliance-sim/main.ts"),
      ...(options.offlineDir ? ["--offline", options.offlineDir] : ["--licensing", state.licensingUrl]),
      "--ca",
      state.caPath,
      "--license-id",
      licenseId,
      "--license-token",
      token,
      "--state-dir",
      join(state.dataDir, "sim", name),
      "--fingerprint-prefix",
      fingerprintPrefix,
      "--verbose",
    ],
    { cwd: REPO_ROOT, stdio: ["pipe", "pipe", "pipe"] },
  );
  let out = "";
  const waiters = new Set<() => void>();
  const onData = (chunk: Buffer) => {
    out += chunk.toString();
    for (const w of waiters) w();
  };
  child.stdout!.on("data", onData);
  child.stderr!.on("data", onData);
  return {
    output: () => out,
    waitFor: (pattern, timeoutMs = 60_000) =>
      new Promise<void>((done, fail) => {
        const check = () => {
          if (pattern.test(out)) {
            clearTimeout(timer);
            waiters.delete(check);
            done();
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          fail(new Error(`box ${name} did not print ${pattern} within ${timeoutMs} ms; it printed:\n${out.slice(-2_000)}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      }),
    send: (command) => {
      child.stdin!.write(`${command}\n`);
    },
    stop: () =>
      new Promise<void>((done) => {
        if (child.exitCode !== null || child.signalCode !== null) return done();
        child.once("exit", () => done());
        child.kill("SIGINT");
        setTimeout(() => child.kill("SIGKILL"), 10_000).unref();
      }),
  };
}
