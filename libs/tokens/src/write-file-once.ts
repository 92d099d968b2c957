/**
 * Create-once secret files (the dev KEK, the dev admin issuer key): written atomically with mode
 * 0600 and never overwritten, even when two processes start at the same time.
 */
import { randomBytes } from "node:crypto";
import { link, mkdir, readFile, unlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";

/**
 * Returns the contents of `path`, creating it first with `create()` if it does not exist (mode
 * 0600, in a 0700 folder). Also used by libs/rpc for the TLS session-ticket secret.
 */
export async function readOrCreateFile(path: string, create: () => string | Promise<string>): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const contents = await create();
  // Write a private temp file, then link() it into place: link fails with EEXIST instead of
  // replacing (rename would silently overwrite a key another process just created), and readers
  // never see a half-written file.
  const temp = join(dirname(path), `.${randomBytes(6).toString("hex")}.tmp`);
  await writeFile(temp, contents, { mode: 0o600, flag: "wx" });
  try {
    await link(temp, path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    // Lost the race: the other process's file is the one everybody uses.
  } finally {
    await unlink(temp).catch(() => undefined);
  }
  return readFile(path, "utf8");
}
