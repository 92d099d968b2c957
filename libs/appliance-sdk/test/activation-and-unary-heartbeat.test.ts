import { X509Certificate } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { ErrorInfoSchema } from "@lcp/proto/google/rpc/error_details_pb";
import { ActivationError, readStateFile } from "@lcp/appliance-sdk";
import { DirectiveType, FINGERPRINT, LICENSE_ID } from "./support/scripted-server.js";
import { createWorld, record, type World } from "./support/fixture.js";
import { waitFor } from "./support/manual-clock.js";

let world: World;
afterEach(async () => world?.close());

describe("activation", () => {
  it("sends the licence, fingerprint and a real CSR for its deployment's SPIFFE id, and stores a certificate for its own key", async () => {
    world = await createWorld();
    const box = await world.make();
    await box.activate();
    const req = world.server.activations[0]!;
    expect(req).toMatchObject({ licenseId: LICENSE_ID, licenseToken: world.server.licenseToken, fingerprint: FINGERPRINT });
    expect(req.csrPem).toContain("CERTIFICATE REQUEST");
    const stored = readStateFile(world.stateFile)!;
    const cert = new X509Certificate(stored.certificatePem);
    expect(cert.subjectAltName).toContain("spiffe://lcp.local/appliance/dep-0001");
    expect(cert.checkPrivateKey((await import("node:crypto")).createPrivateKey(stored.privateKeyPem))).toBe(true);
  });

  it("surfaces a refusal's domain code, and LICENSE_REVOKED on a re-activation locks the box for good", async () => {
    world = await createWorld();
    const box = await world.make();
    await box.activate();
    world.server.refuseWith = new ConnectError("licence revoked", Code.FailedPrecondition, undefined, [
      { desc: ErrorInfoSchema, value: create(ErrorInfoSchema, { reason: "LICENSE_REVOKED", domain: "lcp" }) },
    ]);
    const err = await box.activate().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ActivationError);
    expect((err as ActivationError).code).toBe("LICENSE_REVOKED");
    expect(box.state()).toEqual({ state: "LOCKED", reason: "REVOKED" });
    const rebooted = await world.make();
    expect(rebooted.state()).toEqual({ state: "LOCKED", reason: "REVOKED" });
  });

  it("refuses a malformed licence token before calling anyone", async () => {
    world = await createWorld();
    const box = await world.make({ licenseToken: "not-a-jwt" });
    await expect(box.activate()).rejects.toMatchObject({ code: "LICENSE_TOKEN_MALFORMED" });
    expect(world.server.activations).toEqual([]);
  });
});

describe("sendHeartbeatOnce (HTTP/1.1 boxes)", () => {
  it("applies the directives it gets, acks them on the next call, and never rejects when the server is down", async () => {
    world = await createWorld();
    const box = await world.make();
    const events = record(box);
    await box.activate();
    const lock = world.server.directive(DirectiveType.SUSPEND);
    world.server.unaryDirectives.push(lock);

    const first = await box.sendHeartbeatOnce();
    expect(first).toMatchObject({ ok: true, directives: 1, state: { state: "SUSPENDED" } });
    expect(world.server.unaryCalls[0]!.ackedDirectiveIds).toEqual([]);

    const second = await box.sendHeartbeatOnce();
    expect(second).toMatchObject({ ok: true, directives: 0 });
    expect(world.server.unaryCalls[1]!.ackedDirectiveIds).toEqual([lock.id]);

    world.server.unreachable = true;
    const down = await box.sendHeartbeatOnce();
    expect(down.ok).toBe(false);
    expect(events.errors.length).toBe(1);
  });

  it("in httpVersion 1.1 mode, start() polls SendHeartbeat every interval", async () => {
    world = await createWorld({ heartbeatIntervalMs: 2_000 });
    const box = await world.make({ httpVersion: "1.1" });
    await box.activate();
    box.start();
    for (let i = 1; i <= 5; i++) {
      await waitFor(() => world.server.unaryCalls.length === i, `call ${i}`);
      await world.clock.advance(1_999);
      expect(world.server.unaryCalls.length).toBe(i);
      await world.clock.advance(1);
    }
    expect(world.server.streams).toEqual([]);
    expect(box.state()).toEqual({ state: "ACTIVE" });
  });
});
