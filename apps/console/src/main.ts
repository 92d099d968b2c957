/**
 * The console process: configuration from the environment → `startConsole`, stopped cleanly on
 * SIGINT/SIGTERM (@lcp/service runService: exit codes, signals). Wiring only.
 */
import { runService } from "@lcp/service";
import { startConsole } from "./app.js";
import { readConsoleConfig } from "./config.js";

await runService({ name: "console", readConfig: readConsoleConfig, start: (config) => startConsole(config) });
