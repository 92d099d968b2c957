/**
 * The SDK against the real licensing app (and a real signing-keys) over real TLS: Activate with a
 * CSR and no client certificate, then the heartbeat over mTLS with the issued certificate. While
 * licensing answers Heartbeat with Unimplemented, the box must keep running on its lease (GRACE)
 * and report errors, never crash; once Heartbeat is served, the same test sees it connect.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAppliance, readStateFile, type Appliance } from "@lcp/appliance-sdk";
import { testDatabases } from "@lcp/testing/db";
import { TEST_ISSUER, provisionOnPrem, startHarness, type LicensingHarness } from "./support.js";
import { waitFor } from "@lcp/testing/wait";

const sqlite = testDatabases().find((d) => d.name === "sqlite")!;

describe("against the real licensing app", () => {
  let h: LicensingHarness;
  let dir: string;
  const boxes: Appliance[] = [];
  beforeAll(async () => {
    h = await startHarness(sqlite);
    dir = await mkdtemp(join(tmpdir(), "appliance-sdk-real-"));
  });
  afterAll(async () => {
    for (const b of boxes) await b.stop();
    await h?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("activates over server-authenticated TLS, stores a verified lease, and survives a refused stream on its lease", async () => {
    const { license, deployment } = await provisionOnPrem(h);
    const box = await createAppliance({
      baseUrl: h.licensing.url,
      caPem: h.pki.ca.certPem,
      licenseId: license.id,
      licenseToken: license.token,
      fingerprint: "real-box-1",
      stateFile: join(dir, "box.json"),
      issuer: TEST_ISSUER,
      trustDomain: h.pki.trustDomain,
      backoff: { initialMs: 50, maxMs: 200 },
    });
    boxes.push(box);
    const errors: Error[] = [];
    box.on("error", (e) => errors.push(e));
    const result = await box.activate();
    expect(result.deploymentId).toBe(deployment.id);
    expect(box.state()).toEqual({ state: "ACTIVE" });
    expect(readStateFile(join(dir, "box.json"))!.deploymentId).toBe(deployment.id);

    box.start();
    // Today Heartbeat answers Unimplemented (after mTLS authentication); once it is served, the
    // stream connects instead. Either way the certificate from Activate must be accepted.
    await waitFor(() => errors.length >= 2 || box.status().connected, "stream attempts", 10_000);
    expect(errors.filter((e) => /unauthenticated|permission/i.test(e.message))).toEqual([]);
    expect(box.state().state).not.toBe("LOCKED");
  });
});
