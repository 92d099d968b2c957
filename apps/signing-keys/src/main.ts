/**
 * The signing-keys process: configuration from the environment → `startSigningKeys`, stopped cleanly on
 * SIGINT/SIGTERM (@lcp/service runService: exit codes, signals). Wiring only.
 */
import { runService } from "@lcp/service";
import { startSigningKeys } from "./app.js";
import { readSigningKeysConfig } from "./config.js";

await runService({ name: "signing-keys", readConfig: readSigningKeysConfig, start: startSigningKeys });
