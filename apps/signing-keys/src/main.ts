/**
 * The signing-keys process: configuration from the environment → startSigningKeys → stop
 * cleanly on SIGINT/SIGTERM. Wiring only.
 */
import { ConfigError } from "@lcp/rpc";
import { startSigningKeys } from "./app.js";
import { readSigningKeysConfig } from "./config.js";

try {
  const app = await startSigningKeys(await readSigningKeysConfig(process.env));
  const stop = () => {
    app.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
} catch (err) {
  // A configuration mistake is the operator's to fix: one line naming the variable, no stack.
  if (err instanceof ConfigError) console.error(`signing-keys: configuration error: ${err.message}`);
  else console.error("signing-keys: failed to start", err);
  process.exit(1);
}
