/**
 * `runService(...)`: an app's `main.ts` in one call — environment → config → start, a clean stop
 * on SIGINT/SIGTERM, and the exit codes every app shares.
 */
import { ConfigError } from "@lcp/rpc";

/** Exit code of a process whose configuration was refused: the operator's to fix. */
export const EXIT_CONFIG_ERROR = 2;
/** Exit code of a process that failed to start for any other reason, or failed to stop. */
export const EXIT_FAILURE = 1;

/** Options of {@link runService}. */
export interface RunServiceOptions<Config> {
  /** The app's name, which starts every line this prints. */
  readonly name: string;
  /** Parses and validates the environment (throws `ConfigError` naming the variable). */
  readonly readConfig: (env: NodeJS.ProcessEnv) => Promise<Config>;
  /** The app's `start<App>(config)`; its `reloadTls`, if any, is what SIGHUP does. */
  readonly start: (config: Config) => Promise<{ close(): Promise<void>; reloadTls?(): Promise<unknown> }>;
  /** Default `process.env`. */
  readonly env?: NodeJS.ProcessEnv;
}

/**
 * Reads the configuration and starts the app; on SIGINT or SIGTERM closes it and exits 0 (1 if
 * closing failed); on SIGHUP reloads its TLS files (node's default for SIGHUP would exit). A
 * configuration mistake prints one line naming the variable, no stack, and exits
 * {@link EXIT_CONFIG_ERROR}; any other start failure prints the error and exits
 * {@link EXIT_FAILURE}. A signal that arrives while the app starts is answered once it has
 * started (a second one ends the process at once), so a stop sent the moment the ready line
 * appears is never lost to the gap between that line and this function getting the app.
 */
export async function runService<Config>(options: RunServiceOptions<Config>): Promise<void> {
  let app: { close(): Promise<void>; reloadTls?(): Promise<unknown> } | undefined;
  let stopRequested = false;
  const stop = () => {
    if (!app) {
      stopRequested = true;
      return;
    }
    app.close().then(
      () => process.exit(0),
      () => process.exit(EXIT_FAILURE),
    );
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    app = await options.start(await options.readConfig(options.env ?? process.env));
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`${options.name}: configuration error: ${err.message}`);
      process.exit(EXIT_CONFIG_ERROR);
    }
    console.error(`${options.name}: failed to start`, err);
    process.exit(EXIT_FAILURE);
  }
  if (stopRequested) stop();
  // The reload logs its own outcome (applied, unchanged, refused); a failure here is a bug, not a bad file.
  const reload = app.reloadTls?.bind(app);
  if (reload) process.on("SIGHUP", () => void reload().catch((err: unknown) => console.error(`${options.name}: TLS reload failed`, err)));
}
