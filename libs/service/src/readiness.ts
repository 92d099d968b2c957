/**
 * `createReadinessMonitor(options)`: whether this replica can do its work now. It probes the
 * database on an interval and tells `onChange` when the answer flips, so `startService` can mark
 * `grpc.health.v1` NOT_SERVING (load balancers and kubelet stop sending calls) while the database
 * is unreachable and SERVING again when it returns. Liveness is separate: the process answering
 * at all.
 */
import type { Database } from "@lcp/persistence";
import type { RpcMetrics } from "@lcp/rpc";
import type { Logger } from "pino";

/** The name of the readiness gauge, under the app's prefix (`licensing_ready`): 1 ready, 0 not. */
export const READY_GAUGE = "ready";

/** Options of {@link createReadinessMonitor}. */
export interface ReadinessMonitorOptions {
  /** Resolves when the dependency answers; rejects (or outlasts `timeoutMs`) when it does not. */
  readonly probe: () => Promise<void>;
  /** What is probed, for the log line and the reason (`"database"`). */
  readonly dependency: string;
  readonly intervalMs: number;
  /** A probe slower than this counts as a failure. Default: the interval, at most 1 s. */
  readonly timeoutMs?: number;
  readonly log: Logger;
  /** Set to 1 or 0 on every change. */
  readonly gauge?: ReturnType<RpcMetrics["gauge"]>;
  /** Called once per change of state, never twice in a row with the same value. */
  readonly onChange: (ready: boolean) => void;
}

/** A running monitor. */
export interface ReadinessMonitor {
  /** Whether the last probe succeeded (true until the first one fails). */
  readonly ready: boolean;
  /** Why it is not ready (one line), or undefined when it is. */
  readonly reason: string | undefined;
  /** Stops probing; no `onChange` follows. */
  stop(): void;
}

/** The probe `startService` uses: the cheapest statement either driver answers. */
export function databaseProbe(db: Database): () => Promise<void> {
  return async () => {
    await db.em().getConnection().execute("select 1");
  };
}

/** Starts probing at once, then every `intervalMs`; the first failure flips to not ready. */
export function createReadinessMonitor(options: ReadinessMonitorOptions): ReadinessMonitor {
  const timeoutMs = options.timeoutMs ?? Math.min(options.intervalMs, 1_000);
  let ready = true;
  let reason: string | undefined;
  let stopped = false;
  let pending: Promise<void> | undefined;
  options.gauge?.set(1);

  function settle(ok: boolean, why?: string): void {
    if (stopped) return;
    if (!ok) reason = why;
    if (ok === ready) return;
    ready = ok;
    if (ok) {
      reason = undefined;
      options.log.info({ dependency: options.dependency }, `${options.dependency} reachable again; health SERVING`);
    } else {
      options.log.warn({ dependency: options.dependency, reason: why }, `${options.dependency} unreachable; health NOT_SERVING`);
    }
    options.gauge?.set(ok ? 1 : 0);
    options.onChange(ok);
  }

  function tick(): void {
    // A probe still hanging from an earlier tick is not answered yet: that is not ready, and
    // starting another would only pile up waiters on a pool that cannot connect.
    if (pending) {
      settle(false, `${options.dependency} probe still unanswered`);
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    const attempt = options.probe();
    pending = attempt.then(
      () => undefined,
      () => undefined,
    );
    void pending.then(() => (pending = undefined));
    Promise.race([attempt, timedOut]).then(
      () => settle(true),
      (err: unknown) => settle(false, `${options.dependency} unreachable: ${oneLine(err)}`),
    ).finally(() => clearTimeout(timer));
  }

  tick();
  const interval = setInterval(tick, options.intervalMs);
  interval.unref();
  return {
    get ready() {
      return ready;
    },
    get reason() {
      return reason;
    },
    stop() {
      stopped = true;
      clearInterval(interval);
    },
  };
}

function oneLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.replace(/\s+/g, " ").slice(0, 160);
}
