/**
 * The licensing process: configuration from the environment → `startLicensing`, stopped cleanly on
 * SIGINT/SIGTERM (@lcp/service runService: exit codes, signals). Wiring only.
 */
import { runService } from "@lcp/service";
import { startLicensing } from "./app.js";
import { readLicensingConfig } from "./config.js";

await runService({ name: "licensing", readConfig: readLicensingConfig, start: startLicensing });
