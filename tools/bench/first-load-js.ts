/**
 * The console's first-load JavaScript, as `npm run bench -- console` weighs it against its goal
 * (at most 250 KB gzipped): the scripts the built index.html loads before the app can render,
 * each gzipped at level 9 as a server compressing its responses would send it.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

/** The scripts a built index.html loads up front: every `<script src>` and `<link rel="modulepreload" href>`, as written. */
export function firstLoadScriptUrls(indexHtml: string): string[] {
  const urls: string[] = [];
  const attr = (tag: string, name: string) => new RegExp(`\\s${name}\\s*=\\s*(?:"([^"]*)"|'([^']*)'|([^\\s>]+))`, "i").exec(tag)?.slice(1).find((v) => v !== undefined);
  for (const [tag] of indexHtml.matchAll(/<(?:script|link)\b[^>]*>/gi)) {
    const isScript = /^<script/i.test(tag);
    const url = isScript ? attr(tag, "src") : attr(tag, "rel")?.toLowerCase().split(/\s+/).includes("modulepreload") ? attr(tag, "href") : undefined;
    if (url && !urls.includes(url)) urls.push(url);
  }
  return urls;
}

/** Sizes of the first-load JavaScript of the app built in `webRoot`. */
export interface FirstLoadJavaScript {
  /** The files counted, as paths from the site's root (`/assets/index-….js`). */
  files: string[];
  rawBytes: number;
  /** The sum of each file's gzip (level 9) size, as a server compressing each response would send them. */
  gzipBytes: number;
}

/**
 * The first-load JavaScript of the app built in `webRoot`: the scripts its index.html names or
 * modulepreloads, with `alsoFetched` (same-origin paths a page load was seen fetching) added.
 * A script outside the built assets (another origin, or a path that leaves `webRoot`) is an error:
 * its size cannot be told from here.
 */
export async function firstLoadJavaScript(webRoot: string, alsoFetched: Iterable<string> = []): Promise<FirstLoadJavaScript> {
  const named = firstLoadScriptUrls(await readFile(join(webRoot, "index.html"), "utf8"));
  const files = [...new Set([...named, ...alsoFetched])];
  let rawBytes = 0;
  let gzipBytes = 0;
  for (const file of files) {
    if (!/^\/[A-Za-z0-9_@~+-][A-Za-z0-9._@~+/-]*$/.test(file) || file.split("/").some((s) => s === "..")) {
      throw new Error(`first-load script ${JSON.stringify(file.slice(0, 200))} is not a file of the built app`);
    }
    const bytes = await readFile(join(webRoot, file));
    rawBytes += bytes.length;
    gzipBytes += gzipSync(bytes, { level: 9 }).length;
  }
  return { files, rawBytes, gzipBytes };
}
