/**
 * fleet-sweep's entry point: configuration → app; stops cleanly on SIGINT/SIGTERM.
 */
import { ConfigError, createLogger } from "@lcp/rpc";
import { startFleetSweep } from "./app.js";
import { readFleetSweepConfig } from "./config.js";

const log = createLogger("fleet-sweep");
try {
  const config = await readFleetSweepConfig(process.env);
  const app = await startFleetSweep({ ...config, logger: createLogger("fleet-sweep", config.logLevel) });
  log.info({ url: app.url, licensing: config.licensingUrl, sweepIntervalMs: config.sweepIntervalMs }, "fleet-sweep ready");
  const stop = () => {
    void app.close().then(() => process.exit(0));
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
} catch (err) {
  if (err instanceof ConfigError) {
    log.fatal({ variable: err.variable }, err.message);
  } else {
    log.fatal({ err }, "fleet-sweep failed to start");
  }
  process.exit(1);
}
