import { pino, type Logger } from "pino";
import { traceFields } from "./tracing.js";

/**
 * Creates the JSON logger every app and library uses: one line per event on stdout, with a
 * `service` field so lines from the four apps can be told apart when their output is merged
 * (`npm start` runs them side by side).
 *
 * The level comes from `LOG_LEVEL` (default `info`). Under vitest the default is `silent`, so
 * test output shows failures rather than request logs; set `LOG_LEVEL` to see them.
 *
 * While a trace span is current (tracing.ts), every line carries its `trace_id` and `span_id`, so
 * a line leads to its trace and a trace to its lines.
 */
export function createLogger(name: string, level?: string): Logger {
  return pino({
    base: { service: name },
    level: level ?? defaultLevel(process.env),
    timestamp: pino.stdTimeFunctions.isoTime,
    mixin: traceFields,
  });
}

/** The log level from the environment, as `createLogger` applies it. */
export function defaultLevel(env: NodeJS.ProcessEnv): string {
  if (env["LOG_LEVEL"]) return env["LOG_LEVEL"];
  return env["VITEST"] ? "silent" : "info";
}

export type { Logger };
