/**
 * The built single-page app (`WEB_ROOT`): `index.html` for every screen route, and the hashed
 * files under `assets/`, served immutable. Nothing outside `assets/` is reachable, no directory
 * is listed, and a path that could climb out is refused before the disk is touched.
 */
import { createReadStream } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import type { ServerResponse } from "node:http";
import { extname, join, sep } from "node:path";
import { promisify } from "node:util";
import { brotliCompress, constants as zlibConstants, gzip } from "node:zlib";
import { sendText } from "./http.js";

const brotli = promisify(brotliCompress);
const gzipAsync = promisify(gzip);

/** Text assets worth compressing (images and fonts are compressed already). */
const COMPRESSIBLE = new Set([".js", ".mjs", ".css", ".map", ".json", ".svg", ".txt", ".wasm"]);
/** Below this a compressed answer saves less than its framing costs. */
const MIN_COMPRESS_BYTES = 1_024;
/** Compressed copies kept in memory: the built app is a handful of files, so this bounds only abuse. */
const MAX_CACHED_BYTES = 32 * 1024 * 1024;

/** The encoding to answer with for an `accept-encoding` header: br, else gzip, else none. */
export function chooseEncoding(acceptEncoding: string | undefined): "br" | "gzip" | undefined {
  if (!acceptEncoding) return undefined;
  const offered = new Map<string, number>();
  for (const part of acceptEncoding.slice(0, 256).split(",")) {
    const [name, ...params] = part.trim().toLowerCase().split(";");
    const q = params.map((p) => p.trim()).find((p) => p.startsWith("q="));
    offered.set(name!, q === undefined ? 1 : Number(q.slice(2)) || 0);
  }
  if ((offered.get("br") ?? 0) > 0) return "br";
  if ((offered.get("gzip") ?? 0) > 0) return "gzip";
  return undefined;
}

/** Content types of what Vite emits (and what a page may link); anything else is a download. */
const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".gif": "image/gif",
  ".webp": "image/webp",
  ".avif": "image/avif",
  ".ico": "image/x-icon",
  ".woff": "font/woff",
  ".woff2": "font/woff2",
  ".ttf": "font/ttf",
  ".txt": "text/plain; charset=utf-8",
  ".wasm": "application/wasm",
};

/** What `/licensing` answers when the web app has not been built. */
export const NOT_BUILT_MESSAGE = "The console's web app has not been built: run `npm run build -w @lcp/console`, then reload.";

// One path segment of an asset: ordinary file-name characters, not starting with a dot.
const SEGMENT = /^[A-Za-z0-9_@~+-][A-Za-z0-9._@~+-]{0,199}$/;

/** The built web app, read from disk per request (so a rebuild needs no restart). */
export interface WebRoot {
  /** Sends `index.html` (not cached: it names the current assets), or 503 when there is none. */
  sendIndex(res: ServerResponse, head: boolean): Promise<void>;
  /** Whether `index.html` exists. */
  built(): Promise<boolean>;
  /**
   * Sends `/assets/<rest>`, or 404. `rest` is the raw (still percent-encoded) path after `/assets/`;
   * text files go out brotli- or gzip-compressed when `acceptEncoding` allows, compressed once per
   * file version and kept in memory (assets are immutable by name).
   */
  sendAsset(res: ServerResponse, rest: string, head: boolean, acceptEncoding?: string): Promise<void>;
}

/** Creates the web root reader for an absolute folder. */
export function createWebRoot(root: string): WebRoot {
  const assetsDir = join(root, "assets");
  const indexPath = join(root, "index.html");
  // path|encoding → the compressed bytes of the file version (size and mtime) they were made from.
  const compressed = new Map<string, { version: string; body: Buffer }>();
  let cachedBytes = 0;
  const compressedBody = async (path: string, version: string, encoding: "br" | "gzip"): Promise<Buffer> => {
    const key = `${path}|${encoding}`;
    const hit = compressed.get(key);
    if (hit?.version === version) return hit.body;
    const raw = await readFile(path);
    const body =
      encoding === "br"
        ? await brotli(raw, { params: { [zlibConstants.BROTLI_PARAM_QUALITY]: 9, [zlibConstants.BROTLI_PARAM_SIZE_HINT]: raw.length } })
        : await gzipAsync(raw, { level: 9 });
    if (hit) {
      cachedBytes -= hit.body.length;
      compressed.delete(key);
    }
    if (cachedBytes + body.length <= MAX_CACHED_BYTES) {
      compressed.set(key, { version, body });
      cachedBytes += body.length;
    }
    return body;
  };
  return {
    async built() {
      return (await stat(indexPath).catch(() => undefined))?.isFile() === true;
    },
    async sendIndex(res, head) {
      let html: Buffer;
      try {
        html = await readFile(indexPath);
      } catch {
        sendText(res, 503, NOT_BUILT_MESSAGE);
        return;
      }
      res.writeHead(200, { "content-type": "text/html; charset=utf-8", "content-length": html.length, "cache-control": "no-store" });
      res.end(head ? undefined : html);
    },
    async sendAsset(res, rest, head, acceptEncoding) {
      const path = assetPath(assetsDir, rest);
      const info = path === undefined ? undefined : await stat(path).catch(() => undefined);
      if (path === undefined || !info?.isFile()) {
        sendText(res, 404, "not found");
        return;
      }
      const ext = extname(path).toLowerCase();
      const headers = {
        "content-type": CONTENT_TYPES[ext] ?? "application/octet-stream",
        // Vite names assets by their content hash: a changed file is a new name.
        "cache-control": "public, max-age=31536000, immutable",
        vary: "accept-encoding",
      };
      const encoding = COMPRESSIBLE.has(ext) && info.size >= MIN_COMPRESS_BYTES ? chooseEncoding(acceptEncoding) : undefined;
      if (encoding) {
        const body = await compressedBody(path, `${info.size}:${info.mtimeMs}`, encoding);
        res.writeHead(200, { ...headers, "content-encoding": encoding, "content-length": body.length });
        res.end(head ? undefined : body);
        return;
      }
      res.writeHead(200, { ...headers, "content-length": info.size });
      if (head) {
        res.end();
        return;
      }
      const file = createReadStream(path);
      file.on("error", () => res.destroy());
      file.pipe(res);
    },
  };
}

/** The file an asset path names, or undefined when it is not a plain relative path under `assetsDir`. */
function assetPath(assetsDir: string, rest: string): string | undefined {
  if (rest.length === 0 || rest.length > 1024) return undefined;
  let decoded: string;
  try {
    decoded = decodeURIComponent(rest);
  } catch {
    return undefined;
  }
  // Every segment must be an ordinary name: no "..", ".", empty segments, backslashes, NULs or dotfiles.
  const segments = decoded.split("/");
  if (segments.length > 8 || !segments.every((s) => SEGMENT.test(s))) return undefined;
  const path = join(assetsDir, ...segments);
  return path.startsWith(assetsDir + sep) ? path : undefined;
}
