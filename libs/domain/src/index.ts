/**
 * @lcp/domain: the pure rules of licensing. No I/O; `now` is always a parameter (epoch ms),
 * durations are milliseconds. See docs/design.md §5.
 */
export * from "./verdict.js";
export * from "./duration.js";
export * from "./settings.js";
export * from "./state.js";
export * from "./fingerprint.js";
export * from "./events.js";
export * from "./beat.js";
export * from "./transitions.js";
export * from "./lease.js";
export * from "./appliance-state.js";
export * from "./audit-actions.js";
export * from "./paging.js";
export * from "./permissions.js";
export * from "./text.js";
export * from "./audit-event-limits.js";
