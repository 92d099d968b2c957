/**
 * The console's web assets for `npm start`: the console server serves only built files (as in
 * production, and so its Content-Security-Policy holds without exceptions for a dev server), so
 * `npm start` builds them with Vite when they are missing or older than their sources.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

/** Newest modification time of any file under `path` (a file or a folder), 0 if absent. */
function newestMtime(path: string): number {
  if (!existsSync(path)) return 0;
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let newest = 0;
  for (const entry of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, entry)));
  return newest;
}

/**
 * Builds `apps/console/web` into `apps/console/dist/web` unless the built `index.html` is newer
 * than every source of the web app and of the workspace code it bundles (the generated contracts
 * and the domain rules), or `force` asks for a build anyway. Returns whether it built.
 */
export function ensureConsoleAssets(repoRoot: string, log: (line: string) => void, options: { force?: boolean } = {}): boolean {
  const web = join(repoRoot, "apps/console/web");
  const built = join(repoRoot, "apps/console/dist/web/index.html");
  const sources = Math.max(
    ...[join(web, "src"), join(web, "index.html"), join(web, "vite.config.ts"), join(repoRoot, "libs/proto/src/gen"), join(repoRoot, "libs/domain/src")].map(newestMtime),
  );
  if (!options.force && existsSync(built) && statSync(built).mtimeMs >= sources) return false;
  log("building the console's web assets (apps/console/web → apps/console/dist/web)…");
  const result = spawnSync(process.execPath, [join(repoRoot, "node_modules/vite/bin/vite.js"), "build", "--logLevel", "warn", "--config", join(web, "vite.config.ts")], {
    cwd: repoRoot,
    stdio: "inherit",
  });
  if (result.status !== 0) throw new Error("building the console's web assets failed (see above)");
  return true;
}
