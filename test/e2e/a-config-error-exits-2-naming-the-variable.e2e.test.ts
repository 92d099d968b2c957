/**
 * Every app's main.ts refuses a bad setting the same way (libs/service runService): one line on
 * stderr naming the variable, no stack, exit code 2, and nothing written to DATA_DIR.
 */
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runTs } from "../support/processes.js";

const dataDir = mkdtempSync(join(tmpdir(), "lcp-config-error-"));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe("a configuration error", () => {
  it.each(["licensing", "signing-keys", "audit", "fleet-sweep"])("stops %s with exit code 2 and one line naming the variable", async (app) => {
    const res = await runTs(`apps/${app}/src/main.ts`, [], { env: { ...process.env, DATA_DIR: dataDir, PORT: "not-a-port" } });
    expect(res.code).toBe(2);
    expect(res.stderr).toBe(`${app}: configuration error: PORT: "not-a-port" is not a port number (0–65535)\n`);
    expect(readdirSync(dataDir)).toEqual([]);
  });
});
