/**
 * The appliance simulator's engine: N boxes built on @lcp/appliance-sdk, each with its own
 * fingerprint and state file, activated and streaming, with a plain-text report every second and
 * commands to cut and restore the network. `main.ts` is the CLI around it; tests drive it directly.
 *
 * Air-gapped boxes (a files folder instead of licensing's URL) exchange files there the way an
 * operator carries them: box i writes `<fingerprint>.request`, and imports `<fingerprint>.response`
 * when told to (renamed `.imported` once accepted).
 */
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import {
  ActivationError,
  OfflineFileError,
  createAppliance,
  type Appliance,
  type ApplianceState,
  type Scheduler,
} from "@lcp/appliance-sdk";

/** One licence a box activates with. */
export interface SimLicense {
  readonly licenseId: string;
  readonly licenseToken: string;
}

/** Options of {@link createSimulator}. */
export interface SimulatorOptions {
  /** `https://host:port` of licensing; absent, the boxes are air-gapped and use `filesDir`. */
  readonly licensingUrl?: string;
  /** Air-gapped boxes: the folder their request and response files are exchanged in. */
  readonly filesDir?: string;
  readonly caPem: string;
  /** Token issuer the boxes pin. */
  readonly issuer: string;
  readonly trustDomain?: string;
  /** The licences; box i uses licences[i % licences.length]. */
  readonly licenses: readonly SimLicense[];
  readonly count: number;
  readonly stateDir: string;
  readonly fingerprintPrefix: string;
  /** Use Connect over HTTP/1.1 and the unary SendHeartbeat instead of the stream. */
  readonly http1?: boolean;
  /** Print per-box events (state changes, directives, errors); default when count ≤ 10. */
  readonly verbose?: boolean;
  /** Where lines go. */
  readonly print: (line: string) => void;
  /** Tests: an in-memory transport, clock and scheduler instead of the network and real time. */
  readonly transport?: Transport;
  readonly clock?: () => number;
  readonly scheduler?: Scheduler;
  /** Activations in flight at once (default 32), so a thousand boxes do not stampede licensing. */
  readonly activationConcurrency?: number;
}

/** A running simulation. */
export interface Simulator {
  /** Activates every box not yet activated (retrying while licensing is unreachable) and starts streaming. */
  run(): Promise<void>;
  /** The live counts line: `ACTIVE n GRACE n SUSPENDED n LOCKED n UNACTIVATED n connected c/N`. */
  countsLine(): string;
  /** Counts per state. */
  counts(): Record<ApplianceState | "UNACTIVATED", number>;
  /** Drops every stream and stops reconnecting; the boxes keep evaluating offline. */
  offline(): Promise<void>;
  /** Reconnects every activated box. */
  online(): void;
  /** One line per box. */
  statusLines(): string[];
  /** Air-gapped: every box with a pending request imports `<fingerprint>.response` if it is there. */
  importResponses(): Promise<void>;
  /** Air-gapped: every activated box writes a renewal request `<fingerprint>.request`. */
  writeRenewalRequests(): Promise<void>;
  /** Stops every box and writes its state file. */
  stop(): Promise<void>;
}

interface Box {
  index: number;
  fingerprint: string;
  appliance: Appliance;
  activated: boolean;
  lastError: string | null;
}

const STATES: ReadonlyArray<ApplianceState | "UNACTIVATED"> = ["ACTIVE", "GRACE", "SUSPENDED", "LOCKED", "UNACTIVATED"];
// Failures worth retrying: licensing not up yet or briefly overloaded. Refusals (revoked, bound to
// another box, bad token) are final and are printed instead.
const RETRYABLE = new Set([Code.Unavailable, Code.DeadlineExceeded, Code.Unknown, Code.Internal, Code.ResourceExhausted, Code.Aborted]);

/** Creates a simulator (see the file comment). Loading state files happens in `run()`. */
export function createSimulator(options: SimulatorOptions): Simulator {
  if (options.licenses.length === 0) throw new Error("at least one licence is needed");
  if ((options.licensingUrl === undefined) === (options.filesDir === undefined)) throw new Error("give exactly one of licensingUrl and filesDir");
  const filesDir = options.filesDir;
  const boxes: Box[] = [];
  const verbose = options.verbose ?? options.count <= 10;
  let online = true;
  let stopped = false;
  const clock = options.clock ?? Date.now;
  const wait = (ms: number) =>
    new Promise<void>((resolve) => {
      const s = options.scheduler;
      if (s) s.setTimeout(resolve, ms);
      else setTimeout(resolve, ms);
    });

  async function makeBox(index: number): Promise<Box> {
    const license = options.licenses[index % options.licenses.length]!;
    const fingerprint = `${options.fingerprintPrefix}${index}`;
    const appliance = await createAppliance({
      ...(options.licensingUrl === undefined ? {} : { baseUrl: options.licensingUrl }),
      caPem: options.caPem,
      licenseId: license.licenseId,
      licenseToken: license.licenseToken,
      fingerprint,
      stateFile: join(options.stateDir, `${fingerprint}.json`),
      issuer: options.issuer,
      ...(options.trustDomain ? { trustDomain: options.trustDomain } : {}),
      agentVersion: "lcp-appliance-sim/0.0.0",
      httpVersion: options.http1 ? "1.1" : "2",
      ...(options.transport ? { transport: options.transport } : {}),
      ...(options.clock ? { clock: options.clock } : {}),
      ...(options.scheduler ? { scheduler: options.scheduler } : {}),
    });
    const box: Box = { index, fingerprint, appliance, activated: appliance.isActivated(), lastError: null };
    appliance.on("state", (e) => {
      if (verbose) options.print(`box ${index} state ${e.state}${e.reason ? ` (${e.reason})` : ""}`);
    });
    appliance.on("directive", (e) => {
      if (verbose) options.print(`box ${index} directive ${e.type} ${e.outcome}${e.reason ? `: ${e.reason}` : ""}`);
    });
    appliance.on("lease-rejected", (e) => options.print(`box ${index} lease rejected: ${e.code} ${e.message}`));
    appliance.on("renewal-due", () => options.print(`box ${index} renewal due: type renew`));
    appliance.on("error", (e) => {
      box.lastError = e.message;
      if (verbose) options.print(`box ${index} error: ${e.message}`);
    });
    return box;
  }

  async function activate(box: Box): Promise<void> {
    let delay = 1_000;
    while (!stopped && !box.activated) {
      try {
        const result = await box.appliance.activate();
        box.activated = true;
        options.print(`box ${box.index} activated deployment ${result.deploymentId} lease seq ${result.leaseSeq}`);
      } catch (error) {
        const cause = error instanceof ActivationError ? error.cause : error;
        const retry = cause instanceof ConnectError && RETRYABLE.has(cause.code);
        const code = error instanceof ActivationError ? error.code : "ERROR";
        box.lastError = (error as Error).message;
        options.print(`box ${box.index} activation failed: ${code} ${(error as Error).message}${retry ? `; retrying in ${delay / 1000}s` : ""}`);
        if (!retry) return;
        await wait(delay);
        delay = Math.min(delay * 2, 30_000);
      }
    }
  }

  const fileOf = (box: Box, kind: "request" | "response") => join(filesDir!, `${box.fingerprint}.${kind}`);

  async function writeRequest(box: Box, kind: "activation" | "renewal"): Promise<void> {
    const file = kind === "activation" ? await box.appliance.writeActivationRequest() : await box.appliance.writeRenewalRequest({ sim_boxes: boxes.length });
    await writeFile(fileOf(box, "request"), `${file}\n`, { mode: 0o600 });
    options.print(`box ${box.index} wrote ${kind} request ${fileOf(box, "request")}`);
  }

  async function importResponse(box: Box): Promise<void> {
    const path = fileOf(box, "response");
    const text = await readFile(path, "utf8").catch(() => null);
    if (text === null) return;
    try {
      const result = await box.appliance.importResponse(text);
      box.activated = box.appliance.isActivated();
      await rename(path, `${path}.imported`);
      options.print(`box ${box.index} imported ${result.kind} response: ${result.answer}${result.lockReason ? ` (${result.lockReason})` : ""} lease seq ${result.leaseSeq}`);
      if (box.activated && !stopped) box.appliance.start();
    } catch (error) {
      const code = error instanceof OfflineFileError ? error.code : "ERROR";
      box.lastError = (error as Error).message;
      options.print(`box ${box.index} response refused: ${code} ${(error as Error).message}`);
    }
  }

  async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
    let next = 0;
    const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length && !stopped) await fn(items[next++]!);
    });
    await Promise.all(workers);
  }

  const sim: Simulator = {
    async run() {
      await mkdir(options.stateDir, { recursive: true, mode: 0o700 });
      const distinct = new Set(options.licenses.map((l) => l.licenseId)).size;
      if (options.count > distinct) {
        options.print(`sim: ${options.count} boxes share ${distinct} licence(s): only one box per licence can bind; the others will be refused`);
      }
      for (let i = 0; i < options.count; i++) boxes.push(await makeBox(i));
      options.print(`sim: ${boxes.length} boxes, ${boxes.filter((b) => b.activated).length} already activated (state in ${options.stateDir})`);
      if (filesDir !== undefined) {
        await mkdir(filesDir, { recursive: true, mode: 0o700 });
        for (const box of boxes) {
          if (box.activated) box.appliance.start();
          else if (box.appliance.status().pendingRequest === null) await writeRequest(box, "activation");
        }
        options.print(`sim: air-gapped; files in ${filesDir} (commands: import, renew)`);
        return;
      }
      await pool(boxes, options.activationConcurrency ?? 32, async (box) => {
        await activate(box);
        if (box.activated && online && !stopped) box.appliance.start();
      });
      options.print(`sim: ${boxes.filter((b) => b.activated).length}/${boxes.length} activated; streaming`);
    },
    counts() {
      const counts = Object.fromEntries(STATES.map((s) => [s, 0])) as Record<ApplianceState | "UNACTIVATED", number>;
      for (const box of boxes) counts[box.activated ? box.appliance.state().state : "UNACTIVATED"]++;
      return counts;
    },
    countsLine() {
      const counts = sim.counts();
      const connected = boxes.filter((b) => b.activated && b.appliance.status().connected).length;
      return `${STATES.map((s) => `${s} ${counts[s]}`).join(" ")} connected ${connected}/${boxes.length}${online ? "" : " (offline)"}`;
    },
    async offline() {
      online = false;
      await Promise.all(boxes.map((b) => b.appliance.disconnect()));
    },
    online() {
      online = true;
      for (const box of boxes) if (box.activated) box.appliance.start();
    },
    statusLines() {
      const now = clock();
      return boxes.map((b) => {
        if (!b.activated) return `box ${b.index} ${b.fingerprint} UNACTIVATED${b.lastError ? ` last error: ${b.lastError}` : ""}`;
        const s = b.appliance.status();
        const left = s.leaseExpiresAt === null ? "-" : `${Math.max(0, Math.round((s.leaseExpiresAt - now) / 1000))}s`;
        return `box ${b.index} ${b.fingerprint} ${s.state}${s.reason ? `(${s.reason})` : ""} deployment ${s.deploymentId} lease seq ${s.leaseSeq} expires in ${left} ${s.connected ? "connected" : "disconnected"}`;
      });
    },
    async importResponses() {
      for (const box of boxes) if (box.appliance.status().pendingRequest !== null) await importResponse(box);
    },
    async writeRenewalRequests() {
      for (const box of boxes) if (box.activated) await writeRequest(box, "renewal");
    },
    async stop() {
      stopped = true;
      await Promise.all(boxes.map((b) => b.appliance.stop()));
    },
  };
  return sim;
}
