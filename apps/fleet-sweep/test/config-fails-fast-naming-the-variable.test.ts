/** Configuration is parsed once at start; a bad value fails fast naming its variable (before any I/O). */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "@lcp/rpc";
import { describe, expect, it } from "vitest";
import { readFleetSweepConfig } from "../src/config.js";

describe("fleet-sweep configuration", () => {
  for (const [variable, value] of [
    ["LICENSING_URL", "http://localhost:7443"],
    ["SWEEP_INTERVAL", "0.5s"],
    ["SWEEP_PAGE_SIZE", "-1"],
    ["SWEEP_PAGE_SIZE", "50001"],
    ["SWEEP_PARALLELISM", "0"],
    ["SWEEP_PARALLELISM", "17"],
    ["SWEEP_PARALLELISM", "two"],
  ] as const) {
    it(`refuses ${variable}=${JSON.stringify(value)}`, async () => {
      const err = await readFleetSweepConfig({ [variable]: value }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).variable).toBe(variable);
      expect((err as Error).message).toMatch(new RegExp(`^${variable}: `));
    });
  }

  it("passes ADMIN_PORT and READINESS_INTERVAL on to startService", async () => {
    const dir = await mkdtemp(join(tmpdir(), "lcp-fleet-sweep-config-"));
    try {
      const config = await readFleetSweepConfig({ DATA_DIR: dir, ADMIN_PORT: "9446", READINESS_INTERVAL: "5s" });
      expect(config).toMatchObject({ adminPort: 9446, readinessIntervalMs: 5_000 });
      const err = await readFleetSweepConfig({ DATA_DIR: dir, ADMIN_PORT: "7446" }).catch((e: unknown) => e);
      expect((err as ConfigError).variable).toBe("ADMIN_PORT");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
