import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterEach, describe, expect, it } from "vitest";
import { firstLoadJavaScript, firstLoadScriptUrls } from "../bench/first-load-js.js";

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

/** A built app: index.html and its files under assets/. */
async function builtApp(indexHtml: string, assets: Record<string, string>): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), "lcp-first-load-"));
  dirs.push(root);
  await mkdir(join(root, "assets"));
  await writeFile(join(root, "index.html"), indexHtml);
  for (const [name, text] of Object.entries(assets)) await writeFile(join(root, "assets", name), text);
  return root;
}

// Vite's own shape: a module script, its preloaded chunks, a stylesheet.
const VITE_INDEX = `<!doctype html><html><head>
<link rel="icon" href="data:," />
<script type="module" crossorigin src="/assets/index-A1.js"></script>
<link rel="modulepreload" crossorigin href="/assets/react-B2.js">
<link rel="stylesheet" crossorigin href="/assets/index-C3.css">
</head><body><div id="root"></div><script>/* inline: nothing to fetch */</script></body></html>`;

describe("the console's first-load JavaScript", () => {
  it("names every script and modulepreload of index.html once, in order, and no stylesheet, icon or inline script", () => {
    expect(firstLoadScriptUrls(VITE_INDEX)).toEqual(["/assets/index-A1.js", "/assets/react-B2.js"]);
    const odd = `<LINK REL='preload modulepreload' HREF='/assets/x.js'><script src=/assets/y.js defer></script><script data-src="/assets/no.js"></script><link rel="modulepreload" href="/assets/x.js">`;
    expect(firstLoadScriptUrls(odd)).toEqual(["/assets/x.js", "/assets/y.js"]);
  });

  it("sums each file's level-9 gzip size beside the raw size, adding the scripts a page load fetched besides", async () => {
    const files = { "index-A1.js": "export const a = 1;\n".repeat(500), "react-B2.js": "function r(){return 2}\n".repeat(300), "lazy-D4.js": "export default 4;\n".repeat(100) };
    const root = await builtApp(VITE_INDEX, { ...files, "index-C3.css": "body{}" });
    const gz = (name: keyof typeof files) => gzipSync(Buffer.from(files[name]), { level: 9 }).length;
    const raw = (name: keyof typeof files) => Buffer.byteLength(files[name]);

    const named = await firstLoadJavaScript(root);
    expect(named.files).toEqual(["/assets/index-A1.js", "/assets/react-B2.js"]);
    expect(named.gzipBytes).toBe(gz("index-A1.js") + gz("react-B2.js"));
    expect(named.rawBytes).toBe(raw("index-A1.js") + raw("react-B2.js"));
    expect(named.gzipBytes).toBeLessThan(named.rawBytes);

    // A chunk the page was seen fetching counts too; one index.html names already counts once.
    const fetched = await firstLoadJavaScript(root, ["/assets/lazy-D4.js", "/assets/index-A1.js"]);
    expect(fetched.files).toEqual(["/assets/index-A1.js", "/assets/react-B2.js", "/assets/lazy-D4.js"]);
    expect(fetched.gzipBytes).toBe(named.gzipBytes + gz("lazy-D4.js"));
  });

  it("refuses a script it cannot weigh: another origin, a relative path, a path climbing out of the app, a missing file", async () => {
    const refused = async (src: string) => {
      const root = await builtApp(`<script type="module" src="${src}"></script>`, { "index-A1.js": "1" });
      return firstLoadJavaScript(root);
    };
    await expect(refused("https://cdn.example.org/react.js")).rejects.toThrow(/"https:\/\/cdn\.example\.org\/react\.js" is not a file of the built app/);
    await expect(refused("assets/index-A1.js")).rejects.toThrow(/is not a file of the built app/);
    await expect(refused("/assets/../../../etc/passwd")).rejects.toThrow(/is not a file of the built app/);
    await expect(refused("/assets/missing.js")).rejects.toThrow(/ENOENT/);
    // The message quotes at most 200 characters of what index.html says.
    const long = `/${"a".repeat(5_000)}/../x.js`;
    await expect(refused(long)).rejects.toThrow(new RegExp(`"/a{199}" is not a file`));
  });
});
