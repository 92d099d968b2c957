/**
 * The audit process: configuration from the environment → `startAudit`, stopped cleanly on
 * SIGINT/SIGTERM (@lcp/service runService: exit codes, signals). Wiring only.
 */
import { runService } from "@lcp/service";
import { startAudit } from "./app.js";
import { readAuditConfig } from "./config.js";

await runService({ name: "audit", readConfig: readAuditConfig, start: startAudit });
