/**
 * `loadTicketSecret`: the TLS session-ticket secret is created once in the data dir (mode 0600) and
 * read back on every later start, so a restarted process resumes its predecessor's sessions; a
 * named shared file must exist, hold 48 bytes and be private, or startup fails naming the variable
 * (without echoing what the file holds); in production the generated file is refused.
 */
import { randomBytes } from "node:crypto";
import { chmod, chown, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ConfigError, loadTicketSecret, TICKET_SECRET_FILE } from "@lcp/rpc";

const VARIABLE = "TLS_TICKET_KEY_FILE";

describe("the session-ticket secret file", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "lcp-ticket-secret-"));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const refusal = (p: Promise<unknown>) =>
    p.then(
      () => {
        throw new Error("expected a ConfigError");
      },
      (e: unknown) => {
        expect(e).toBeInstanceOf(ConfigError);
        return e as ConfigError;
      },
    );

  it("is created 0600 under the data dir on first start and read back unchanged on the next", async () => {
    const dataDir = join(dir, "data");
    const first = await loadTicketSecret({ dataDir, variable: VARIABLE });
    expect(first).toHaveLength(48);
    const path = join(dataDir, TICKET_SECRET_FILE);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(Buffer.from((await readFile(path, "utf8")).trim(), "base64")).toEqual(Buffer.from(first));
    expect(await loadTicketSecret({ dataDir, variable: VARIABLE })).toEqual(first);
    // Two processes starting at once on a fresh data dir end up with one secret.
    const racing = join(dir, "racing");
    const [a, b] = await Promise.all([loadTicketSecret({ dataDir: racing, variable: VARIABLE }), loadTicketSecret({ dataDir: racing, variable: VARIABLE })]);
    expect(a).toEqual(b);
  });

  it("reads a named shared file in base64 or hex", async () => {
    const secret = randomBytes(48);
    const file = join(dir, "shared.key");
    await writeFile(file, `${secret.toString("base64")}\n`, { mode: 0o600 });
    expect(Buffer.from(await loadTicketSecret({ file, dataDir: dir, variable: VARIABLE }))).toEqual(secret);
    await writeFile(file, secret.toString("hex"), { mode: 0o600 });
    expect(Buffer.from(await loadTicketSecret({ file, dataDir: dir, variable: VARIABLE }))).toEqual(secret);
  });

  it("refuses a missing, short, malformed or group-readable named file, naming the variable and not the secret", async () => {
    const file = join(dir, "shared.key");
    const missing = await refusal(loadTicketSecret({ file, dataDir: dir, variable: VARIABLE }));
    expect(missing.variable).toBe(VARIABLE);
    expect(missing.message).toMatch(/cannot read .*shared\.key \(ENOENT\)/);

    const short = randomBytes(32).toString("base64");
    await writeFile(file, short, { mode: 0o600 });
    const tooShort = await refusal(loadTicketSecret({ file, dataDir: dir, variable: VARIABLE }));
    expect(tooShort.variable).toBe(VARIABLE);
    expect(tooShort.message).toMatch(/must hold 48 random bytes/);
    expect(tooShort.message).not.toContain(short);

    await writeFile(file, "not a secret at all!");
    expect((await refusal(loadTicketSecret({ file, dataDir: dir, variable: VARIABLE }))).message).toMatch(/must hold 48 random bytes/);

    await writeFile(file, randomBytes(48).toString("base64"));
    await chmod(file, 0o604);
    const open = await refusal(loadTicketSecret({ file, dataDir: dir, variable: VARIABLE }));
    expect(open.variable).toBe(VARIABLE);
    expect(open.message).toMatch(/readable by others \(mode 604\).*chmod 600/);

    // Group-readable: refused for a group this process is not in, accepted for its own (a
    // Kubernetes Secret volume with fsGroup is 0440, group fsGroup).
    const foreignGid = 54_321;
    expect(process.getgroups?.() ?? []).not.toContain(foreignGid);
    await chmod(file, 0o640);
    await chown(file, process.getuid!(), foreignGid);
    expect((await refusal(loadTicketSecret({ file, dataDir: dir, variable: VARIABLE }))).message).toMatch(/readable by others \(mode 640\)/);
    await chmod(file, 0o440);
    await chown(file, process.getuid!(), process.getgid!());
    expect(await loadTicketSecret({ file, dataDir: dir, variable: VARIABLE })).toHaveLength(48);
  });

  it("refuses a damaged data-dir file naming DATA_DIR, and never replaces it", async () => {
    const path = join(dir, TICKET_SECRET_FILE);
    await writeFile(path, "truncated", { mode: 0o600 });
    const err = await refusal(loadTicketSecret({ dataDir: dir, variable: VARIABLE }));
    expect(err.variable).toBe("DATA_DIR");
    expect(await readFile(path, "utf8")).toBe("truncated");
  });

  it("refuses the generated secret in production, naming the variable, and creates nothing", async () => {
    const dataDir = join(dir, "data");
    const err = await refusal(loadTicketSecret({ dataDir, variable: VARIABLE, production: true }));
    expect(err.variable).toBe(VARIABLE);
    expect(err.message).toMatch(/required when NODE_ENV=production/);
    await expect(stat(join(dataDir, TICKET_SECRET_FILE))).rejects.toThrow(/ENOENT/);
    // A provisioned file is what production takes.
    const file = join(dir, "shared.key");
    await writeFile(file, `${randomBytes(48).toString("base64")}\n`, { mode: 0o600 });
    expect(await loadTicketSecret({ file, dataDir, variable: VARIABLE, production: true })).toHaveLength(48);
  });
});
