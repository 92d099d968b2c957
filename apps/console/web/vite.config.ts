/**
 * Builds the operator console's browser app (docs/design.md §13). The console server serves
 * index.html for every /licensing path and the hashed files under /assets/, with a CSP of
 * `script-src 'self'; style-src 'self'`: nothing here may emit inline scripts or styles.
 */
import { fileURLToPath } from "node:url";
import react from "@vitejs/plugin-react";
import { defaultClientConditions, defineConfig } from "vite";

const root = fileURLToPath(new URL(".", import.meta.url));

export default defineConfig({
  root,
  base: "/",
  plugins: [react()],
  // Workspace packages (@lcp/proto, @lcp/domain) resolve to their TypeScript sources.
  resolve: { conditions: ["source", ...defaultClientConditions] },
  build: {
    outDir: "../dist/web",
    emptyOutDir: true,
    assetsDir: "assets",
    target: "es2022",
    // Every browser the console supports has modulepreload; the polyfill is dead weight.
    modulePreload: { polyfill: false },
  },
});
