/**
 * `npm run bench -- heartbeat`: the licensing Heartbeat stream at fleet scale (docs/design.md §8, §11)
 * beside a raw `node:http2` echo of the same message and concurrency, measured in the same run.
 *
 * Processes besides this one: the server under test (licensing, SQLite, real mTLS with one
 * appliance certificate per activated box), its signing-keys (a process of its own, so licensing
 * can be killed alone), the raw echo server (TLS with client certificates, echoes each gRPC
 * frame), and the LOAD process (`--load`), which opens
 * STREAMS concurrent streams, each on its own TLS connection, with a plain http2 client (so the
 * load generator's cost is the same for both servers). Per target it reports:
 * - beats/s with every stream closed-loop (one beat in flight per stream), and p50/p99 ack latency;
 * - p50/p99 ack latency with every stream beating once per INTERVAL (default 1 s, the production
 *   beat), beats spread evenly over the interval: the goal is p99 < 50 ms at 10,000 streams;
 * - server CPU per stream opened (user + system time while the load opens its streams, divided
 *   by the streams): the TLS handshake plus, for licensing, the hello (a database read);
 * - server RSS per held stream: (RSS with all streams held and idle − RSS before) / streams;
 * - during the interval phase, each server's event-loop stalls, what its main thread did in them
 *   (on a CPU or waiting for one, from Linux schedstat: V8's profile shows node's native TLS and
 *   HTTP/2 work as idle), the cores the server and its main thread used, and the machine's.
 * The stream's rate limit (10 beats/s in production) is lifted for the closed-loop phase.
 * Distinct boxes: one activated deployment per stream (activating 10,000 takes ~3 minutes);
 * `HEARTBEAT_BENCH_BOXES` spreads the streams over fewer, for a quicker run that measures less.
 *
 * Last, the kill -9 goal (`--reconnect-load`): RECONNECT_STREAMS streams held and acked,
 * the server SIGKILLed and restarted at once on the same port (licensing on the same data dir),
 * each stream redialling with the SDK's jittered backoff and offering its last TLS session ticket as
 * the SDK does (both servers keep their ticket keys across the restart: licensing in its data dir,
 * the echo from the bench); it reports kill → serving, kill → 50 %, 99 %, 100 % of the streams
 * acked again, failed attempts, how many reconnects resumed TLS, and the restarted server's CPU
 * (in all and per stream taken back), for the echo (the floor) and for licensing.
 *
 * `HEARTBEAT_BENCH_STREAMS` (default 1000; e.g. "1000,10000"; 0 runs only the reconnect phase),
 * `HEARTBEAT_BENCH_SECONDS` (5, per phase), `HEARTBEAT_BENCH_INTERVAL_MS` (1000),
 * `HEARTBEAT_BENCH_RECONNECT_STREAMS` (10000; 0 skips it), `HEARTBEAT_BENCH_RECONNECT_DEADLINE_S`
 * (180), `HEARTBEAT_BENCH_RECONNECT_SILENT_MS` (180000), `HEARTBEAT_BENCH_RECONNECT_FIRST_ATTEMPT`
 * (0 = the SDK; an experiment otherwise), `HEARTBEAT_BENCH_PROFILE_DIR` (a CPU profile of licensing;
 * each server prints a clock anchor that maps the profile's sample times to wall-clock time),
 * `HEARTBEAT_BENCH_SERVER_FLAGS` (more node flags for licensing, e.g. "--trace-gc").
 * Runnable alone: `node --conditions=source --import tsx tools/bench/heartbeat.ts`.
 */
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { printResults, type BenchResult } from "./result.js";
import { ask, forkBenchChild, stop } from "./children.js";
import { load, reconnectLoad, type LoadRequest, type LoadResult, type ReconnectRequest, type ReconnectResult } from "./heartbeat-load.js";
import { serve, type BoxIdentity, type ServeRequest } from "./heartbeat-serve.js";
import { describeStalls, machineCoresBetween, machineCpu, type ServerStalls } from "./heartbeat-stats.js";

const STREAMS = (process.env.HEARTBEAT_BENCH_STREAMS ?? "1000").split(",").map((s) => Number(s.trim())).filter((n) => n > 0);
const SECONDS = Number(process.env.HEARTBEAT_BENCH_SECONDS ?? "5");
// One activated box per stream, as in a fleet: the hot path's per-box work (the coalesced
// last_seen write, the hello's reads, the held-stream checks) grows with boxes, not streams.
const BOXES = Number(process.env.HEARTBEAT_BENCH_BOXES ?? Infinity);
const INTERVAL_MS = Number(process.env.HEARTBEAT_BENCH_INTERVAL_MS ?? "1000");
const RECONNECT_STREAMS = Number(process.env.HEARTBEAT_BENCH_RECONNECT_STREAMS ?? "10000");
// An experiment, not the SDK: start each dropped stream's backoff at this attempt (0 = the SDK,
// whose first window is [initialMs, 2·initialMs]).
const RECONNECT_FIRST_ATTEMPT = Number(process.env.HEARTBEAT_BENCH_RECONNECT_FIRST_ATTEMPT ?? "0");
const RECONNECT_DEADLINE_S = Number(process.env.HEARTBEAT_BENCH_RECONNECT_DEADLINE_S ?? "180");
// The SDK abandons a stream silent for 3 beat intervals; the production interval is 60 s.
const RECONNECT_SILENT_MS = Number(process.env.HEARTBEAT_BENCH_RECONNECT_SILENT_MS ?? "180000");

// ---------------------------------------------------------------- child processes

function forkSelf(arg: string): ChildProcess {
  // HEARTBEAT_BENCH_PROFILE_DIR: a CPU profile of the licensing server, to see where its time goes;
  // HEARTBEAT_BENCH_SERVER_FLAGS: more node flags for it (e.g. "--trace-gc").
  const licensing = arg === "--serve-licensing";
  const profile = process.env.HEARTBEAT_BENCH_PROFILE_DIR && licensing ? ["--cpu-prof", `--cpu-prof-dir=${process.env.HEARTBEAT_BENCH_PROFILE_DIR}`] : [];
  if (licensing) profile.push(...(process.env.HEARTBEAT_BENCH_SERVER_FLAGS ?? "").split(" ").filter(Boolean));
  return forkBenchChild(import.meta.url, arg, profile);
}

// ---------------------------------------------------------------- the benchmark

/** Runs the heartbeat benchmark and returns its figures. */
export async function benchHeartbeat(): Promise<BenchResult[]> {
  const { createTestPki } = await import("@lcp/testing/pki");
  const pki = await createTestPki();
  const own = await pki.service("licensing");
  const skCert = await pki.service("signing-keys");
  const dataDir = mkdtempSync(join(tmpdir(), "lcp-bench-heartbeat-"));
  const pkiMsg = { caPem: pki.ca.certPem, certPem: own.certPem, keyPem: own.keyPem, trustDomain: pki.trustDomain, sk: skCert };
  const results: BenchResult[] = [];
  // Signing-keys has a process of its own: the reconnect phase kills licensing alone.
  const signingKeys = forkSelf("--serve-signing-keys");
  let licensing = forkSelf("--serve-licensing");
  let echo = forkSelf("--serve-echo");
  try {
    const maxStreams = Math.max(0, ...STREAMS, RECONNECT_STREAMS);
    const sk = await ask<{ url: string }>(signingKeys, { dataDir, boxes: 0, pki: pkiMsg, port: 0 } satisfies ServeRequest);
    console.error(`heartbeat bench: activating ${Math.min(BOXES, maxStreams)} boxes…`);
    const licensingReq: ServeRequest = { dataDir, boxes: Math.min(BOXES, maxStreams), pki: pkiMsg, port: 0, signingKeysUrl: sk.url };
    const echoReq: ServeRequest = { dataDir, boxes: 0, pki: pkiMsg, port: 0, echoTicketKeys: randomBytes(48).toString("base64") };
    const lic = await ask<{ url: string; boxes: BoxIdentity[] }>(licensing, licensingReq);
    const raw = await ask<{ url: string }>(echo, echoReq);
    const memory = (child: ChildProcess) => ask<{ rss: number; heapUsed: number; heapTotal: number; external: number }>(child, "rss");

    const cpu = (child: ChildProcess) => ask<{ cpuMicros: number }>(child, "cpu").then((r) => r.cpuMicros);

    const run = async (server: ChildProcess, url: string, boxes: BoxIdentity[], streams: number) => {
      const before = await memory(server);
      const cpuBefore = await cpu(server);
      const loader = forkSelf("--load");
      try {
        const { opened } = await ask<{ opened: number }>(loader, { url, caPem: pki.ca.certPem, boxes, streams, seconds: SECONDS, intervalMs: INTERVAL_MS } satisfies LoadRequest);
        const cpuPerOpenMs = ((await cpu(server)) - cpuBefore) / 1000 / Math.max(1, opened);
        const machine = machineCpu();
        const result = await ask<LoadResult>(loader, "go").finally(() => machine.stop());
        const serverStalls = await ask<ServerStalls>(server, { stallsBetween: [result.intervalFrom, result.intervalTo] });
        const machineCores = machineCoresBetween(machine.samples, result.intervalFrom, result.intervalTo);
        const held = await memory(server);
        await ask(loader, "close");
        const perStream = (bytes: number) => bytes / 1024 / Math.max(1, result.opened);
        return {
          ...result,
          serverStalls,
          machineCores,
          cpuPerOpenMs,
          kbPerStream: perStream(held.rss - before.rss),
          // Where it went (logged, not tabled): the JS heap and node's external memory.
          heapKbPerStream: perStream(held.heapUsed - before.heapUsed),
          heapCommittedKbPerStream: perStream(held.heapTotal - before.heapTotal),
          externalKbPerStream: perStream(held.external - before.external),
        };
      } finally {
        await stop(loader);
      }
    };
    // The echo needs certificates that chain to the CA too: reuse the boxes' (the echo trusts the same CA).
    for (const n of STREAMS) {
      console.error(`heartbeat bench: ${n} streams…`);
      const r = await run(echo, raw.url, lic.boxes, n);
      const l = await run(licensing, lic.url, lic.boxes, n);
      console.error(JSON.stringify({ n, raw: r, licensing: l }));
      const note = l.opened < n || r.opened < n ? ` (opened ${l.opened}/${r.opened} of ${n})` : "";
      results.push(
        { name: `Heartbeat beats/s, ${n} mTLS streams closed-loop${note}`, value: l.beatsPerSecond, unit: "beats/s", baseline: "raw node:http2 echo, same streams", baselineValue: r.beatsPerSecond, ratio: l.beatsPerSecond / r.beatsPerSecond, goal: "≥ 0.5" },
        { name: `Heartbeat p50 ack latency, ${n} streams (ratio = baseline/value)`, value: l.p50Ms, unit: "ms", baseline: "raw echo p50", baselineValue: r.p50Ms, ratio: r.p50Ms / l.p50Ms },
        { name: `Heartbeat p99 ack latency, ${n} streams (ratio = baseline/value)`, value: l.p99Ms, unit: "ms", baseline: "raw echo p99", baselineValue: r.p99Ms, ratio: r.p99Ms / l.p99Ms },
        { name: `Heartbeat p99 ack latency, ${n} streams beating every ${INTERVAL_MS} ms (ratio = baseline/value)${l.intervalUnanswered > 0 ? ` (${l.intervalUnanswered} unanswered)` : ""}`, detail: `the load generator's own event-loop delay p99 / max: ${l.intervalLoadDelayP99Ms.toFixed(1)} / ${l.intervalLoadDelayMaxMs.toFixed(0)} ms (echo run ${r.intervalLoadDelayP99Ms.toFixed(1)} / ${r.intervalLoadDelayMaxMs.toFixed(0)} ms); ${describeStalls(l.serverStalls, l.machineCores)} (echo: ${describeStalls(r.serverStalls, r.machineCores)})`, value: l.intervalP99Ms, unit: "ms", baseline: "raw echo p99, same beats", baselineValue: r.intervalP99Ms, ratio: r.intervalP99Ms / l.intervalP99Ms, goal: "value < 50 ms" },
        { name: `Heartbeat p50 ack latency, ${n} streams beating every ${INTERVAL_MS} ms (ratio = baseline/value)`, value: l.intervalP50Ms, unit: "ms", baseline: "raw echo p50, same beats", baselineValue: r.intervalP50Ms, ratio: r.intervalP50Ms / l.intervalP50Ms },
        { name: `Server RSS per held stream, ${n} streams (ratio = value/baseline)`, value: l.kbPerStream, unit: "KB", baseline: "raw echo RSS per held stream", baselineValue: r.kbPerStream, ratio: l.kbPerStream / r.kbPerStream, goal: "≤ 1.2" },
        { name: `Server CPU per stream opened (TLS handshake; licensing: + hello), ${n} streams (ratio = value/baseline)`, value: l.cpuPerOpenMs, unit: "ms", baseline: "raw echo CPU per stream opened", baselineValue: r.cpuPerOpenMs, ratio: l.cpuPerOpenMs / r.cpuPerOpenMs },
      );
    }

    // kill -9 and restart (same port, same data dir), the echo first as the floor of the same load.
    if (RECONNECT_STREAMS > 0) {
      const n = RECONNECT_STREAMS;
      const reconnect = async (target: "echo" | "licensing", url: string, serveReq: ServeRequest) => {
        const loader = forkSelf("--reconnect-load");
        try {
          console.error(`heartbeat bench: ${target}, ${n} streams held, kill -9 and restart…`);
          const { opened } = await ask<{ opened: number }>(loader, {
            url, caPem: pki.ca.certPem, boxes: lic.boxes, streams: n, target, firstAttempt: RECONNECT_FIRST_ATTEMPT, silentMs: RECONNECT_SILENT_MS, deadlineMs: RECONNECT_DEADLINE_S * 1000,
          } satisfies ReconnectRequest);
          const result = ask<ReconnectResult>(loader, "go");
          const old = target === "echo" ? echo : licensing;
          const exited = new Promise((resolve) => old.once("exit", resolve));
          const killedAt = Date.now();
          old.kill("SIGKILL");
          await exited;
          // Restarted at once on the port the boxes know, as a supervisor would.
          const restarted = forkSelf(target === "echo" ? "--serve-echo" : "--serve-licensing");
          if (target === "echo") echo = restarted;
          else licensing = restarted;
          await ask(restarted, { ...serveReq, boxes: 0, port: Number(new URL(url).port) } satisfies ServeRequest);
          const servingAt = Date.now();
          const cpuAtServing = await cpu(restarted);
          const r = await result;
          const stormCpuS = ((await cpu(restarted)) - cpuAtServing) / 1e6;
          await ask(loader, "close");
          const back = r.backAt.sort((a, b) => a - b);
          const at = (p: number) => {
            const k = Math.max(1, Math.ceil(r.dropped * p));
            return k <= back.length ? (back[k - 1]! - killedAt) / 1000 : NaN;
          };
          const summary = {
            target, opened, dropped: r.dropped, back: back.length,
            servingS: (servingAt - killedAt) / 1000, p50S: at(0.5), p99S: at(0.99), allS: at(1),
            failed: r.failedAt.length, failedAfterServing: r.failedAt.filter((t) => t > servingAt).length, failures: r.failures, failureDurations: r.failureDurations, stormCpuS,
            resumed: r.resumed, cpuPerStreamMs: (stormCpuS * 1000) / Math.max(1, back.length),
          };
          console.error(JSON.stringify(summary));
          return summary;
        } finally {
          await stop(loader);
        }
      };
      const r = await reconnect("echo", raw.url, echoReq);
      const l = await reconnect("licensing", lic.url, licensingReq);
      const note = l.back < n || r.back < n ? ` (back by the ${RECONNECT_DEADLINE_S} s deadline: ${l.back}/${r.back} of ${n})` : "";
      const experiment = RECONNECT_FIRST_ATTEMPT > 0 ? ` (experiment: backoff starts at attempt ${RECONNECT_FIRST_ATTEMPT}, not the SDK's 0)` : "";
      const name = (what: string) => `Reconnect after kill -9 and restart, ${n} streams${experiment}: ${what}`;
      results.push(
        { name: name("kill → restarted server serving (ratio = baseline/value)"), value: l.servingS, unit: "s", baseline: "raw echo killed and restarted the same way", baselineValue: r.servingS, ratio: r.servingS / l.servingS },
        { name: name("kill → 50 % of streams acked again (ratio = baseline/value)"), value: l.p50S, unit: "s", baseline: "raw echo, same load", baselineValue: r.p50S, ratio: r.p50S / l.p50S },
        { name: name("kill → 99 % of streams acked again (ratio = baseline/value)"), value: l.p99S, unit: "s", baseline: "raw echo, same load", baselineValue: r.p99S, ratio: r.p99S / l.p99S },
        { name: name(`kill → all streams acked again (ratio = baseline/value)${note}`), value: l.allS, unit: "s", baseline: "raw echo, same load", baselineValue: r.allS, ratio: r.allS / l.allS, goal: "value ≤ 60 s" },
        { name: name(`failed attempts (refused while down, or no ack; started after serving: ${l.failedAfterServing} / echo ${r.failedAfterServing})`), value: l.failed, unit: "attempts", baseline: "raw echo, same load", baselineValue: r.failed, ratio: l.failed / Math.max(1, r.failed) },
        { name: name("server CPU from serving until all acked (ratio = value/baseline)"), value: l.stormCpuS, unit: "s", baseline: "raw echo, same load", baselineValue: r.stormCpuS, ratio: l.stormCpuS / r.stormCpuS },
        { name: name("server CPU per stream taken back (ratio = value/baseline)"), value: l.cpuPerStreamMs, unit: "ms", baseline: "raw echo, same load", baselineValue: r.cpuPerStreamMs, ratio: l.cpuPerStreamMs / r.cpuPerStreamMs },
        { name: name("streams back on a resumed TLS session (ratio = value/baseline)"), value: l.resumed, unit: "streams", baseline: "raw echo, same load", baselineValue: r.resumed, ratio: l.resumed / Math.max(1, r.resumed) },
      );
    }
  } finally {
    await stop(licensing);
    await stop(echo);
    await stop(signingKeys);
    rmSync(dataDir, { recursive: true, force: true });
  }
  return results;
}

const entry = process.argv[1] ? fileURLToPath(import.meta.url) === process.argv[1] : false;
if (process.argv[2] === "--serve-licensing") await serve("licensing");
else if (process.argv[2] === "--serve-signing-keys") await serve("signing-keys");
else if (process.argv[2] === "--serve-echo") await serve("echo");
else if (process.argv[2] === "--load") await load();
else if (process.argv[2] === "--reconnect-load") await reconnectLoad();
else if (entry) printResults(await benchHeartbeat());
