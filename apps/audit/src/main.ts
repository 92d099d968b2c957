/**
 * The audit process: configuration from the environment → startAudit → stop cleanly on
 * SIGINT/SIGTERM. Wiring only.
 */
import { ConfigError } from "@lcp/rpc";
import { startAudit } from "./app.js";
import { readAuditConfig } from "./config.js";

try {
  const app = await startAudit(await readAuditConfig(process.env));
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
  if (err instanceof ConfigError) console.error(`audit: configuration error: ${err.message}`);
  else console.error("audit: failed to start", err);
  process.exit(1);
}
