/**
 * What `npm run backup` / `npm run restore` save and restore: every app's database, producers
 * first and the audit store last (see createBackup in @lcp/persistence for why that order), each
 * in its default PostgreSQL schema or its `<DATA_DIR>/<app>.sqlite`. Also the environment both
 * commands read, as the apps read it.
 */
import { resolve } from "node:path";
import { defaultSchemaFor, driverForUrl, type BackupTarget } from "@lcp/persistence";

/** The apps with a database, in backup order. */
export const BACKUP_APPS = ["licensing", "signing-keys", "fleet-sweep", "audit"] as const;

/** Every app's backup target. */
export const BACKUP_TARGETS: readonly BackupTarget[] = BACKUP_APPS.map((app) => ({ app, schema: defaultSchemaFor(app) }));

/** A refused argument or setting: exit 2 with one line. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** DATA_DIR (default `./data`) and DATABASE_URL, checked as the apps check them. */
export function storageFromEnv(env: NodeJS.ProcessEnv): { dataDir: string; databaseUrl: string | undefined } {
  const databaseUrl = env.DATABASE_URL?.trim() || undefined;
  try {
    driverForUrl(databaseUrl);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return { dataDir: resolve(env.DATA_DIR?.trim() || "data"), databaseUrl };
}

/** Runs a command's `main`, mapping its failures to the exit codes every command shares (1 failure, 2 usage). */
export function runCommand(name: string, usage: string, main: () => Promise<void>): void {
  main().then(
    () => undefined,
    (err: unknown) => {
      const message = (err as Error)?.message ?? String(err);
      if (err instanceof UsageError) {
        console.error(`${name}: ${message}\n${usage}`);
        process.exitCode = 2;
      } else {
        console.error(`${name}: ${message}`);
        process.exitCode = 1;
      }
    },
  );
}
