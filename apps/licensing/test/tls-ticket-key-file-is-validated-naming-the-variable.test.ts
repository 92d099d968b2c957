/**
 * `TLS_TICKET_KEY_FILE` (licensing replicas sharing one TLS session-ticket secret) is validated at
 * start: a missing or malformed file fails fast naming the variable; without it the secret comes
 * from `<DATA_DIR>/tls-session-ticket.key`, created on first start.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "@lcp/rpc";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readLicensingConfig } from "../src/config.js";

describe("licensing's TLS session-ticket secret", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "lcp-licensing-ticket-"));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("refuses a TLS_TICKET_KEY_FILE that is missing or does not hold 48 bytes, naming it", async () => {
    const bad = join(dir, "bad.key");
    await writeFile(bad, "c2hvcnQ=\n", { mode: 0o600 });
    for (const file of [join(dir, "missing.key"), bad]) {
      const err = await readLicensingConfig({ DATA_DIR: join(dir, "data"), TLS_TICKET_KEY_FILE: file }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).variable).toBe("TLS_TICKET_KEY_FILE");
    }
  });

  it("reads the secret from the data dir when no file is named, the same on every start", async () => {
    const env = { DATA_DIR: join(dir, "data") };
    const first = await readLicensingConfig(env);
    expect(first.sessionTicketSecret).toHaveLength(48);
    expect((await readLicensingConfig(env)).sessionTicketSecret).toEqual(first.sessionTicketSecret);
  });
});
