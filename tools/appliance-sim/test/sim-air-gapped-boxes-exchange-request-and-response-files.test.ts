import { spawnSync } from "node:child_process";
import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createSimulator, type Simulator } from "../sim.js";
// The SDK's air-gapped contract: a control plane that answers request files with real signatures.
import { createAirGap, type AirGap } from "../../../libs/appliance-sdk/test/support/air-gap.js";
import { ISSUER, LICENSE_ID } from "../../../libs/appliance-sdk/test/support/scripted-server.js";

let sim: Simulator | undefined;
let gap: AirGap | undefined;
afterEach(async () => {
  await sim?.stop();
  await gap?.world.close();
});

describe("appliance simulator, air-gapped (--offline)", () => {
  it("writes an activation request per box, imports the responses put beside them, and renews by files", async () => {
    gap = await createAirGap();
    const { world } = gap;
    const files = join(world.dir, "files");
    const lines: string[] = [];
    const make = () =>
      createSimulator({
        filesDir: files,
        caPem: world.server.pki.ca.certPem,
        issuer: ISSUER,
        licenses: [{ licenseId: LICENSE_ID, licenseToken: world.server.licenseToken }],
        count: 2,
        stateDir: join(world.dir, "state"),
        // Box 1 is the fingerprint the contract's leases are bound to; box 0 is another box.
        fingerprintPrefix: "box-serial-000",
        print: (l) => lines.push(l),
        clock: world.clock.now,
        scheduler: world.clock,
        verbose: false,
      });
    sim = make();
    await sim.run();
    const request = (i: number) => readFile(join(files, `box-serial-000${i}.request`), "utf8");
    const respond = (i: number, response: string) => writeFile(join(files, `box-serial-000${i}.response`), response);
    expect((await stat(join(files, "box-serial-0001.request"))).mode & 0o777).toBe(0o600);

    await respond(1, await gap.answerActivation(await request(1)));
    // Box 0 is handed an answer whose lease is bound to box 1's fingerprint: refused, not imported.
    await respond(0, await gap.answerActivation(await request(0)));
    await sim.importResponses();
    expect(lines).toContainEqual(expect.stringMatching(/^box 1 imported activation response: ACTIVE lease seq 1$/));
    expect(lines).toContainEqual(expect.stringMatching(/^box 0 response refused: LEASE_WRONG_FINGERPRINT /));
    expect(sim.counts()).toMatchObject({ ACTIVE: 1, UNACTIVATED: 1 });
    await expect(stat(join(files, "box-serial-0001.response.imported"))).resolves.toBeTruthy();

    // A restarted simulator keeps box 0's pending request (no new one) and resumes box 1.
    await sim.stop();
    const before = await request(0);
    sim = make();
    await sim.run();
    expect(await request(0)).toBe(before);
    expect(sim.counts()).toMatchObject({ ACTIVE: 1, UNACTIVATED: 1 });

    await sim.writeRenewalRequests();
    await respond(1, await gap.answerRenewal(await request(1)));
    await sim.importResponses();
    expect(lines).toContainEqual(expect.stringMatching(/^box 1 imported renewal response: ACTIVE lease seq \d+$/));
  });

  it("the CLI takes --licensing or --offline, never both (exit code 2 and usage)", () => {
    const r = spawnSync(process.execPath, ["--conditions=source", "--import", "tsx", "tools/appliance-sim/main.ts", "--licensing", "https://localhost:7443", "--offline", "files"], {
      encoding: "utf8",
      timeout: 20_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("give --licensing or --offline (one of them)");
  });
});
