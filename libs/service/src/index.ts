/**
 * @lcp/service — one way to run a service: `runService` for an app's main.ts (config errors and
 * exit codes, signals) and `startService` for its `start<App>(config)` (logger, database, outbox
 * relay, server with the denied-audit hook, readiness and the admin port, ready line, ordered
 * shutdown). It wires `@lcp/rpc` and `@lcp/persistence` together, so only apps import it.
 */
export * from "./cleanup-stack.js";
export * from "./run-service.js";
export * from "./readiness.js";
export * from "./start-service.js";
export { acquireTracing } from "./tracing-sdk.js";
