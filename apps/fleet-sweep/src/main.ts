/**
 * The fleet-sweep process: configuration from the environment → `startFleetSweep`, stopped cleanly on
 * SIGINT/SIGTERM (@lcp/service runService: exit codes, signals). Wiring only.
 */
import { runService } from "@lcp/service";
import { startFleetSweep } from "./app.js";
import { readFleetSweepConfig } from "./config.js";

await runService({ name: "fleet-sweep", readConfig: readFleetSweepConfig, start: startFleetSweep });
