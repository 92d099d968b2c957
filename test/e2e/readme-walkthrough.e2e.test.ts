/**
 * The README's "Walkthrough" is run, block by block and verbatim, against a fresh cluster of the
 * real apps, and each block's output is checked, so the README cannot rot. The blocks run in one
 * bash (`set -euo pipefail`), as an operator pasting them into one terminal; only the addresses
 * differ (the blocks default to npm start's ports and read DATA_DIR / *_URL when set).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT, startCluster, type Cluster } from "../support/cluster.js";
import { hold, type Held } from "../support/processes.js";

/** The fenced ```sh blocks of the README's "## Walkthrough" section, in order. */
export function walkthroughBlocks(readme: string): string[] {
  const start = readme.indexOf("\n## Walkthrough\n");
  if (start < 0) throw new Error('README.md has no "## Walkthrough" section');
  const rest = readme.slice(start + 1);
  const next = rest.indexOf("\n## ", 1);
  const section = next < 0 ? rest : rest.slice(0, next);
  return [...section.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
}

const blocks = walkthroughBlocks(readFileSync(join(REPO_ROOT, "README.md"), "utf8"));

let cluster: Cluster;
let session: Held | undefined;
/** Each block's output (stdout and stderr), by index. */
const outputs: string[] = [];

beforeAll(async () => {
  // `npm run token` in the first block signs in to the dev identity provider, as under npm start.
  cluster = await startCluster({ devIdentityProvider: true });
  const script = ["set -euo pipefail", ...blocks.flatMap((block, i) => [`echo "@@ block ${i}"`, block]), 'echo "@@ end"'].join("\n");
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DATA_DIR: cluster.dataDir,
    OIDC_ISSUER: cluster.env.OIDC_ISSUER,
    LICENSING_URL: cluster.urls.licensing,
    AUDIT_URL: cluster.urls.audit,
    FLEET_SWEEP_URL: cluster.urls["fleet-sweep"],
  };
  delete env.NODE_OPTIONS;
  // Its own process group, so teardown can stop the simulators it leaves in the background.
  session = hold("bash", ["-c", script], { env, detached: true });
  const exit = await session.exited();
  const all = session.output();
  for (const part of all.split(/^@@ block /m).slice(1)) {
    const index = Number(part.slice(0, part.indexOf("\n")));
    outputs[index] = part.slice(part.indexOf("\n") + 1).replace(/^@@ end\n?/m, "");
  }
  if (exit.code !== 0) {
    throw new Error(`the walkthrough stopped at block ${outputs.length - 1} (exit ${exit.code ?? exit.signal}):\n${blocks[outputs.length - 1]}\n--- output\n${all.slice(-4_000)}`);
  }
}, 150_000);

afterAll(async () => {
  if (session) {
    try {
      process.kill(-session.child.pid!, "SIGKILL");
    } catch {
      // the session and its simulators have all exited
    }
  }
  await cluster?.stop();
}, 60_000);

describe("README walkthrough", () => {
  it("has the blocks this test checks", () => {
    expect(blocks).toHaveLength(12);
  });

  it("0: a support token and the settings", () => {
    expect(outputs[0]).toMatch(/^\{"heartbeatInterval":"60s","graceWindow":"1209600s"\}$/m);
  });

  it("1: provisions an on-prem deployment with its licence issued in the same step", () => {
    expect(JSON.parse(outputs[1]!)).toEqual({ deployment: "DEPLOYMENT_STATE_PENDING", license: "LICENSE_STATUS_ISSUED" });
  });

  it("2: the simulated box activates", () => {
    const saved = JSON.parse(readFileSync(join(cluster.dataDir, "icu-ward-3.json"), "utf8")) as { deployment: { id: string } };
    expect(outputs[2]).toMatch(new RegExp(`^box 0 activated deployment ${saved.deployment.id} lease seq 1$`, "m"));
  });

  it("3: the control plane sees it ACTIVE, with when it was last seen", () => {
    expect(outputs[3]).toMatch(/^DEPLOYMENT_STATE_ACTIVE last seen \d{4}-\d\d-\d\dT[\d:.]+Z$/m);
  });

  it("4: its heartbeats: the stream held right now, a small lag, the lease and agent it reported", () => {
    const line = outputs[4]!.trim();
    const m = /^DEPLOYMENT_STATE_ACTIVE connected true lag ([\d.]+)s lease seq (\d+) agent (\S+)$/.exec(line);
    expect(m, line).not.toBeNull();
    // Default settings (a beat a minute): the box beat when it connected, moments ago.
    expect(Number(m![1])).toBeLessThan(30);
    expect(Number(m![2])).toBeGreaterThanOrEqual(1);
  });

  it("5: an invalid subscription suspends, a valid one reactivates", () => {
    expect(outputs[5]!.trim().split("\n")).toEqual(["DEPLOYMENT_STATE_SUSPENDED", "DEPLOYMENT_STATE_ACTIVE"]);
  });

  it("6: rebind to the new mainboard, whose box activates", () => {
    // Rebound, the licence waits (ISSUED) for the new box, whose activation makes the deployment ACTIVE.
    expect(outputs[6]!.trim().split("\n").slice(-2)).toEqual(["LICENSE_STATUS_ISSUED", "DEPLOYMENT_STATE_ACTIVE"]);
    expect(readFileSync(join(cluster.dataDir, "icu-ward-3-new.log"), "utf8")).toMatch(/^box 0 activated deployment /m);
  });

  it("7: revoke locks the deployment", () => {
    expect(outputs[7]!.trim()).toBe("LICENSE_STATUS_REVOKED DEPLOYMENT_STATE_LOCKED LOCK_REASON_REVOKED");
  });

  // Who asked is the dev user the token was signed in as: `--role support` signs in as `support`.
  it("8: an on-demand sweep SUCCEEDS over the fleet, a re-run makes no transition, both listed with who asked", () => {
    const lines = outputs[8]!.trim().split("\n");
    expect(lines).toHaveLength(3);
    const m = /^[0-9a-f-]{36} SWEEP_STATUS_SUCCEEDED examined (\d+) requested by support$/.exec(lines[0]!);
    expect(m, lines[0]).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThanOrEqual(1);
    expect(lines[1]).toBe("SWEEP_STATUS_SUCCEEDED transitions 0");
    expect(lines[2]).toBe("support");
  });

  it("9: the audit trail has every step, oldest first, and its chain verifies", () => {
    const lines = outputs[9]!.trim().split("\n");
    const steps = lines.slice(0, -1).map((l) => l.split(" ").slice(1).join(" "));
    const ours = steps.filter((s) => s.endsWith(" support"));
    expect(ours).toEqual([
      "deployment.provision OUTCOME_SUCCESS support",
      "license.issue OUTCOME_SUCCESS support",
      "subscription.update OUTCOME_SUCCESS support",
      "deployment.suspend OUTCOME_SUCCESS support",
      "subscription.update OUTCOME_SUCCESS support",
      "deployment.reactivate OUTCOME_SUCCESS support",
      "license.rebind OUTCOME_SUCCESS support",
      "license.revoke OUTCOME_SUCCESS support",
      "deployment.lock OUTCOME_SUCCESS support",
      "fleet.sweep OUTCOME_SUCCESS support",
      "fleet.sweep OUTCOME_SUCCESS support",
    ]);
    expect(steps.filter((s) => s.startsWith("license.activate OUTCOME_SUCCESS"))).toHaveLength(2);
    const seqs = lines.slice(0, -1).map((l) => Number(l.split(" ")[0]));
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(JSON.parse(lines.at(-1)!)).toEqual({ ok: true, checked: String(seqs.at(-1)) });
  });

  it("10: the seed's story with curl alone: issued, activated, renewed by heartbeat, rebound, revoked, swept", () => {
    expect(outputs[10]!.trim().split("\n")).toEqual([
      "LICENSE_STATUS_ISSUED",
      "DEPLOYMENT_STATE_ACTIVE",
      "LICENSE_STATUS_ISSUED",
      "LICENSE_STATUS_REVOKED",
      "SWEEP_STATUS_SUCCEEDED",
    ]);
  });

  it("11: an air-gapped box activates by a request file answered with npm run offline", () => {
    const lines = outputs[11]!.trim().split("\n");
    expect(lines.slice(-2)).toEqual([expect.stringMatching(/^box 0 imported activation response: ACTIVE lease seq 1$/), "DEPLOYMENT_STATE_ACTIVE CONNECTIVITY_AIR_GAPPED"]);
  });
});
