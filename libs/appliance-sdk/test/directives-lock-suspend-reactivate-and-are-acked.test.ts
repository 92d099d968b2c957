import { afterEach, describe, expect, it } from "vitest";
import { DirectiveType, ackedIds } from "./support/scripted-server.js";
import { createWorld, record, type World } from "./support/fixture.js";
import { waitFor } from "./support/manual-clock.js";

let world: World;
afterEach(async () => world?.close());

async function streamingBox() {
  world = await createWorld();
  const box = await world.make();
  const events = record(box);
  await box.activate();
  box.start();
  await waitFor(() => (world.server.current()?.requests.length ?? 0) >= 2, "first beat");
  return { box, events, server: world.server };
}

describe("state directives", () => {
  it("LOCK locks the box and is acked; the lock survives a restart", async () => {
    const { box, events, server } = await streamingBox();
    const lock = server.pushDirective(DirectiveType.LOCK, { reason: "licence revoked" });
    await waitFor(() => ackedIds(server.current()).includes(lock.id), "LOCK ack");
    expect(box.state()).toEqual({ state: "LOCKED", reason: "LOCK_DIRECTIVE" });
    expect(events.directives).toContainEqual({ id: lock.id, type: "LOCK", reason: "licence revoked", outcome: "applied" });

    await box.stop();
    const rebooted = await world.make();
    expect(rebooted.state()).toEqual({ state: "LOCKED", reason: "LOCK_DIRECTIVE" });
  });

  it("SUSPEND suspends, REACTIVATE restores ACTIVE, each acked", async () => {
    const { box, server } = await streamingBox();
    const suspend = server.pushDirective(DirectiveType.SUSPEND, { reason: "subscription invalid", leaseToken: server.signLease({ st: "SUSPENDED" }) });
    await waitFor(() => ackedIds(server.current()).includes(suspend.id), "SUSPEND ack");
    expect(box.state()).toEqual({ state: "SUSPENDED" });

    const reactivate = server.pushDirective(DirectiveType.REACTIVATE, { reason: "subscription valid", leaseToken: server.signLease({ st: "ACTIVE" }) });
    await waitFor(() => ackedIds(server.current()).includes(reactivate.id), "REACTIVATE ack");
    expect(box.state()).toEqual({ state: "ACTIVE" });
  });

  it("SUSPEND without a lease still suspends; REACTIVATE lifts it", async () => {
    const { box, server } = await streamingBox();
    const suspend = server.pushDirective(DirectiveType.SUSPEND);
    await waitFor(() => ackedIds(server.current()).includes(suspend.id), "SUSPEND ack");
    expect(box.state()).toEqual({ state: "SUSPENDED" });
    const reactivate = server.pushDirective(DirectiveType.REACTIVATE);
    await waitFor(() => ackedIds(server.current()).includes(reactivate.id), "REACTIVATE ack");
    expect(box.state()).toEqual({ state: "ACTIVE" });
  });

  it("REACTIVATE clears a LOCK directive", async () => {
    const { box, server } = await streamingBox();
    const lock = server.pushDirective(DirectiveType.LOCK);
    await waitFor(() => ackedIds(server.current()).includes(lock.id), "LOCK ack");
    const reactivate = server.pushDirective(DirectiveType.REACTIVATE, { leaseToken: server.signLease() });
    await waitFor(() => ackedIds(server.current()).includes(reactivate.id), "REACTIVATE ack");
    expect(box.state()).toEqual({ state: "ACTIVE" });
  });

  it("a redelivered directive (same id) is acked again without being applied twice", async () => {
    const { events, server } = await streamingBox();
    const d = server.directive(DirectiveType.LOCK);
    const push = () => server.current()!.push({ $typeName: "licensing.v1.HeartbeatResponse", kind: { case: "directive", value: d } });
    push();
    await waitFor(() => ackedIds(server.current()).filter((id) => id === d.id).length === 1, "first ack");
    push();
    await waitFor(() => ackedIds(server.current()).filter((id) => id === d.id).length === 2, "second ack");
    expect(events.directives.map((e) => e.outcome)).toEqual(["applied", "duplicate"]);
  });
});
