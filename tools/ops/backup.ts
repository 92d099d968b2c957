/**
 * `npm run backup -- <dir>`: an online backup of every app's database into the new directory
 * `<dir>` (SQLite files through SQLite's backup API, PostgreSQL schemas through pg_dump), with a
 * manifest of what it holds. Reads DATA_DIR and DATABASE_URL like the apps; the apps keep running.
 * The KEK and the PKI are not in it: keep them apart (docs/operations.md "Back up").
 */
import { parseArgs } from "node:util";
import { createBackup } from "@lcp/persistence";
import { BACKUP_TARGETS, runCommand, storageFromEnv, UsageError } from "./targets.js";

const USAGE = "usage: npm run backup -- <new backup directory>";

runCommand("backup", USAGE, async () => {
  let positionals: string[];
  try {
    ({ positionals } = parseArgs({ args: process.argv.slice(2), allowPositionals: true, strict: true }));
  } catch (err) {
    throw new UsageError((err as Error).message.split("\n")[0]!);
  }
  if (positionals.length !== 1 || positionals[0]!.trim() === "") throw new UsageError("name exactly one directory to create");
  const manifest = await createBackup({ targets: BACKUP_TARGETS, ...storageFromEnv(process.env), out: positionals[0]! });
  const bytes = manifest.entries.reduce((n, e) => n + e.bytes, 0);
  console.log(`backup: ${manifest.driver}, ${manifest.entries.map((e) => e.app).join(", ")} (${bytes} bytes) written to ${positionals[0]}`);
});
