/** Configuration is parsed once at start; a bad value fails fast naming its variable (before any I/O). */
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
});
