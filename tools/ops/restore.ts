/**
 * `npm run restore -- <dir> [--force]`: puts every app's database back from a backup made by
 * `npm run backup`, all or nothing, after checking the backup (manifest, driver, apps, SHA-256 of
 * every file). Databases that already hold data are replaced only with `--force`. Stop every app
 * first; start them afterwards (they apply newer migrations, and their outboxes re-send what the
 * audit store's copy lacks). Reads DATA_DIR and DATABASE_URL like the apps.
 */
import { parseArgs } from "node:util";
import { restoreBackup } from "@lcp/persistence";
import { BACKUP_TARGETS, runCommand, storageFromEnv, UsageError } from "./targets.js";

const USAGE = "usage: npm run restore -- <backup directory> [--force]";

runCommand("restore", USAGE, async () => {
  let positionals: string[];
  let force: boolean | undefined;
  try {
    ({ positionals, values: { force } } = parseArgs({ args: process.argv.slice(2), allowPositionals: true, strict: true, options: { force: { type: "boolean" } } }));
  } catch (err) {
    throw new UsageError((err as Error).message.split("\n")[0]!);
  }
  if (positionals.length !== 1 || positionals[0]!.trim() === "") throw new UsageError("name exactly one backup directory");
  const { manifest, replaced } = await restoreBackup({ dir: positionals[0]!, targets: BACKUP_TARGETS, ...storageFromEnv(process.env), force: force === true });
  console.log(
    `restore: ${manifest.entries.map((e) => e.app).join(", ")} restored from the ${manifest.driver} backup of ${manifest.createdAt}` +
      (replaced.length ? ` (replaced ${replaced.join(", ")})` : ""),
  );
});
