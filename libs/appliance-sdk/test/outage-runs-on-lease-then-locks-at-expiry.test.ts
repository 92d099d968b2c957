import { afterEach, describe, expect, it } from "vitest";
import { DirectiveType, FINGERPRINT, LICENSE_ID, ackedIds } from "./support/scripted-server.js";
import { createWorld, record, type World } from "./support/fixture.js";
import { waitFor } from "./support/manual-clock.js";

let world: World;
afterEach(async () => world?.close());

describe("healthy acks, outage, expiry and return", () => {
  it("opens with hello, stays ACTIVE on acks, runs GRACE offline, locks exactly at lease exp, and returns to ACTIVE on a renewed lease", async () => {
    world = await createWorld({ graceWindowMs: 60_000, heartbeatIntervalMs: 1_000 });
    const { clock, server } = world;
    const box = await world.make();
    const events = record(box);
    const activation = await box.activate();
    expect(activation.deploymentId).toBe("dep-0001");
    expect(activation.spiffeId).toBe("spiffe://lcp.local/appliance/dep-0001");

    box.start();
    await waitFor(() => (server.current()?.requests.length ?? 0) >= 2, "hello and first beat");
    expect(box.state()).toEqual({ state: "ACTIVE" });

    // The first message is the hello, naming the licence, fingerprint and the lease seq held.
    const first = server.current()!.requests[0]!;
    expect(first.kind.case).toBe("hello");
    if (first.kind.case !== "hello") throw new Error("unreachable");
    expect(first.kind.value.licenseId).toBe(LICENSE_ID);
    expect(first.kind.value.fingerprint).toBe(FINGERPRINT);
    expect(first.kind.value.lastLeaseSeq).toBe(1n);

    // Healthy beats for ten seconds: still ACTIVE, one beat per interval.
    await clock.advance(10_000);
    expect(box.state()).toEqual({ state: "ACTIVE" });
    expect(server.current()!.requests.filter((r) => r.kind.case === "beat").length).toBeGreaterThanOrEqual(10);

    // Licensing stops: the box keeps running on its lease.
    server.unreachable = true;
    await waitFor(() => !box.status().connected, "stream loss");
    expect(box.state()).toEqual({ state: "GRACE" });

    const exp = box.status().leaseExpiresAt!;
    await clock.advanceTo(exp - 1);
    expect(box.state()).toEqual({ state: "GRACE" });
    await clock.advance(1);
    const locked = events.states.at(-1)!;
    expect(locked).toMatchObject({ state: "LOCKED", reason: "LEASE_EXPIRED", previous: { state: "GRACE" } });
    // The evaluation timer fired at exp itself, not at the next periodic tick.
    expect(locked.at).toBe(exp);

    // Licensing is back: the stream reconnects, but the box stays locked until a fresh lease arrives.
    server.unreachable = false;
    const streamsBefore = server.streams.length;
    await clock.advance(8_000);
    await waitFor(() => server.streams.length > streamsBefore && box.status().connected, "reconnect");
    expect(box.state()).toMatchObject({ state: "LOCKED", reason: "LEASE_EXPIRED" });
    const hello = server.current()!.requests[0]!;
    expect(hello.kind.case === "hello" && hello.kind.value.lastLeaseSeq).toBe(1n);

    const renew = server.pushDirective(DirectiveType.RENEW_LEASE, { leaseToken: server.signLease() });
    await waitFor(() => ackedIds(server.current()).includes(renew.id), "RENEW_LEASE ack");
    expect(box.state()).toEqual({ state: "ACTIVE" });
    expect(box.status().leaseSeq).toBe(2);
    expect(events.states.map((s) => s.state)).toEqual(["ACTIVE", "GRACE", "LOCKED", "ACTIVE"]);
  });
});
