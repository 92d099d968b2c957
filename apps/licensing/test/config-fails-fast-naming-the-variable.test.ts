/** Configuration is parsed once at start; a bad value fails fast naming its variable (before any I/O). */
import { ConfigError } from "@lcp/rpc";
import { describe, expect, it } from "vitest";
import { readLicensingConfig } from "../src/config.js";

describe("licensing configuration", () => {
  for (const [variable, value] of [
    ["SIGNING_KEYS_URL", "http://localhost:7444"],
    ["SIGNING_KEYS_URL", "not a url"],
    ["AUDIT_URL", "ftp://audit"],
    ["TOKEN_ISSUER", "licensing"],
    ["REPLICA_ID", "a b"],
    ["JWKS_MAX_AGE", "soon"],
    ["JWKS_MAX_AGE", "500ms"],
    ["JWKS_MAX_AGE", "1h"],
  ] as const) {
    it(`refuses ${variable}=${JSON.stringify(value)}`, async () => {
      const err = await readLicensingConfig({ [variable]: value }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).variable).toBe(variable);
      expect((err as Error).message).toMatch(new RegExp(`^${variable}: `));
    });
  }
});
