/**
 * Entry point: environment → config → `startLicensing`, and a clean stop on SIGINT/SIGTERM.
 * Wiring only; see app.ts for what starts and config.ts for the variables.
 */
import { ConfigError } from "@lcp/rpc";
import { startLicensing } from "./app.js";
import { readLicensingConfig } from "./config.js";

try {
  const config = await readLicensingConfig(process.env);
  const app = await startLicensing(config);
  const stop = () => {
    app.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(`licensing: configuration error: ${err.message}`);
    process.exit(2);
  }
  console.error("licensing: failed to start", err);
  process.exit(1);
}
