import { closeSync, fstatSync, openSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { StateFileError, createAppliance, readStateFile } from "@lcp/appliance-sdk";
import { DirectiveType, ISSUER, ackedIds } from "./support/scripted-server.js";
import { createWorld, type World } from "./support/fixture.js";
import { waitFor } from "./support/manual-clock.js";

let world: World;
afterEach(async () => world?.close());

describe("state file", () => {
  it("is written with mode 0600, replaced by rename (never rewritten in place), leaves no temp files, and reloads to the same state", async () => {
    world = await createWorld();
    const box = await world.make();
    await box.activate();
    const st = statSync(world.stateFile);
    expect(st.mode & 0o777).toBe(0o600);
    const stored = readStateFile(world.stateFile)!;
    expect(stored.privateKeyPem).toContain("PRIVATE KEY");
    expect(stored.deploymentId).toBe("dep-0001");

    box.start();
    await waitFor(() => (world.server.current()?.requests.length ?? 0) >= 2, "first beat");
    // Hold the old file open: if writes replace it by rename, this descriptor keeps the old,
    // whole content and its link count drops to 0; an in-place rewrite would change it under us.
    const oldContent = readFileSync(world.stateFile, "utf8");
    const fd = openSync(world.stateFile, "r");
    const lock = world.server.pushDirective(DirectiveType.SUSPEND);
    await waitFor(() => ackedIds(world.server.current()).includes(lock.id), "ack");
    await box.stop();
    const after = statSync(world.stateFile);
    expect(fstatSync(fd).nlink).toBe(0);
    expect(readFileSync(fd, "utf8")).toBe(oldContent);
    closeSync(fd);
    expect(after.mode & 0o777).toBe(0o600);
    expect(readdirSync(dirname(world.stateFile))).toEqual(["state.json"]);

    const reloaded = await world.make();
    expect(reloaded.isActivated()).toBe(true);
    expect(reloaded.state()).toEqual({ state: "SUSPENDED" });
    expect(reloaded.status()).toMatchObject({ deploymentId: "dep-0001", leaseSeq: 1 });
  });

  it("every concurrent read during a burst of writes sees a whole file", async () => {
    world = await createWorld();
    const box = await world.make();
    await box.activate();
    box.start();
    await waitFor(() => (world.server.current()?.requests.length ?? 0) >= 2, "first beat");
    let reads = 0;
    let done = false;
    const reader = (async () => {
      while (!done) {
        JSON.parse(readFileSync(world.stateFile, "utf8"));
        reads++;
        await new Promise((r) => setImmediate(r));
      }
    })();
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      ids.push(world.server.pushDirective(i % 2 ? DirectiveType.SUSPEND : DirectiveType.REACTIVATE).id);
    }
    await waitFor(() => ids.every((id) => ackedIds(world.server.current()).includes(id)), "all acks");
    await box.stop();
    done = true;
    await reader;
    expect(reads).toBeGreaterThan(0);
  });

  it("fails clearly on a corrupt file, a file of another licence, and a lease edited in the file", async () => {
    world = await createWorld();
    const box = await world.make();
    await box.activate();
    await box.stop();
    const good = readFileSync(world.stateFile, "utf8");

    writeFileSync(world.stateFile, good.slice(0, 100));
    await expect(world.make()).rejects.toThrow(StateFileError);
    await expect(world.make()).rejects.toThrow(/not valid JSON/);

    writeFileSync(world.stateFile, good);
    await expect(
      createAppliance({ baseUrl: "https://x", caPem: "", licenseId: "another", licenseToken: world.server.licenseToken, fingerprint: "f", stateFile: world.stateFile, issuer: ISSUER }),
    ).rejects.toThrow(/belongs to licence lic-0001/);

    // Stretch the lease by editing its payload: the signature no longer matches.
    const parsed = JSON.parse(good) as { leaseToken: string };
    const [h, p, s] = parsed.leaseToken.split(".") as [string, string, string];
    const payload = JSON.parse(Buffer.from(p, "base64url").toString()) as { exp: number };
    payload.exp += 365 * 86_400;
    parsed.leaseToken = `${h}.${Buffer.from(JSON.stringify(payload)).toString("base64url")}.${s}`;
    writeFileSync(world.stateFile, JSON.stringify(parsed));
    await expect(world.make()).rejects.toThrow(/stored lease does not verify \(TOKEN_BAD_SIGNATURE/);
  });
});
