import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createSimulator, type Simulator } from "../sim.js";
// The SDK's scripted contract server and fake clock: the simulator is proven against the same
// contract here; against the real licensing app in test/e2e.
import { ISSUER, LICENSE_ID, createScriptedServer } from "../../../libs/appliance-sdk/test/support/scripted-server.js";
import { ManualClock, waitFor } from "../../../libs/appliance-sdk/test/support/manual-clock.js";

let sim: Simulator | undefined;
let dir: string | undefined;
afterEach(async () => {
  await sim?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("appliance simulator", () => {
  it("activates N boxes, counts them ACTIVE, GRACE when offline, ACTIVE again when online", async () => {
    dir = await mkdtemp(join(tmpdir(), "appliance-sim-"));
    const clock = new ManualClock(Math.floor(Date.now() / 1000) * 1000);
    const server = await createScriptedServer({ serverClock: clock.trueNow, graceWindowMs: 600_000 });
    const lines: string[] = [];
    sim = createSimulator({
      licensingUrl: "https://licensing.invalid",
      caPem: server.pki.ca.certPem,
      issuer: ISSUER,
      // The scripted server binds nothing, so three boxes may share its one licence here.
      licenses: [{ licenseId: LICENSE_ID, licenseToken: server.licenseToken }],
      count: 3,
      stateDir: dir,
      fingerprintPrefix: "box-serial-000",
      print: (l) => lines.push(l),
      transport: server.transport,
      clock: clock.now,
      scheduler: clock,
      verbose: false,
    });
    await sim.run();
    expect(lines.filter((l) => l.includes("activated deployment dep-0001"))).toHaveLength(3);
    await waitFor(() => server.streams.length === 3 && sim!.countsLine().includes("connected 3/3"), "three streams");
    expect(sim.countsLine()).toBe("ACTIVE 3 GRACE 0 SUSPENDED 0 LOCKED 0 UNACTIVATED 0 connected 3/3");

    await sim.offline();
    expect(sim.countsLine()).toBe("ACTIVE 0 GRACE 3 SUSPENDED 0 LOCKED 0 UNACTIVATED 0 connected 0/3 (offline)");
    await clock.advance(30_000);
    expect(server.streams.every((s) => s.closed)).toBe(true);

    sim.online();
    await waitFor(() => sim!.countsLine().startsWith("ACTIVE 3"), "back online");
    expect(sim.statusLines()).toHaveLength(3);
  });

  it("the CLI refuses missing options with exit code 2 and usage", () => {
    const r = spawnSync(process.execPath, ["--conditions=source", "--import", "tsx", "tools/appliance-sim/main.ts", "--licensing", "https://localhost:7443"], {
      encoding: "utf8",
      timeout: 20_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("--ca is required");
  });
});
