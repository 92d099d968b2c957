/**
 * A REFRESH_KEYS that no longer holds the key which signed the box's lease must not show a healthy
 * box as LOCKED (a host that stops its device on LOCKED would stop patient care fleet-wide on a
 * routine revocation), yet the revoked key must stop being believed within a bounded window: the
 * box keeps its state on the lease, asks for a fresh one at once, adopts it when it comes, and
 * drops the lease (LOCKED, NO_LEASE) exactly at the window's deadline if none came — also across
 * a restart, which neither extends the window nor locks early.
 */
import { afterEach, describe, expect, it } from "vitest";
import { generateSigningKey } from "@lcp/tokens";
import { readStateFile } from "@lcp/appliance-sdk";
import { DirectiveType, ackedIds } from "./support/scripted-server.js";
import { createWorld, record, type World } from "./support/fixture.js";
import { waitFor } from "./support/manual-clock.js";

const WINDOW_MS = 10_000;
let world: World;
afterEach(async () => world?.close());

async function streamingBox(httpVersion: "2" | "1.1" = "2") {
  world = await createWorld({ heartbeatIntervalMs: 1_000 });
  const box = await world.make({ leaseReplacementMs: WINDOW_MS, httpVersion });
  const events = record(box);
  const replacing: number[] = [];
  box.on("lease-replacing", (e) => replacing.push(e.deadline));
  await box.activate();
  box.start();
  if (httpVersion === "2") await waitFor(() => (world.server.current()?.requests.length ?? 0) >= 2, "first beat");
  else await waitFor(() => world.server.unaryCalls.length >= 1, "first call");
  return { box, events, replacing, server: world.server, clock: world.clock };
}

/** Pushes REFRESH_KEYS with only a new key; resolves once the box acked it. */
async function revokeLeaseKey(server: World["server"]) {
  const next = await generateSigningKey();
  const first = server.current()!;
  const d = server.pushDirective(DirectiveType.REFRESH_KEYS, { jwksJson: server.jwksJson([next]) });
  await waitFor(() => ackedIds(first).includes(d.id), "REFRESH_KEYS ack");
  return { next, first };
}

const lockedStates = (events: ReturnType<typeof record>) => events.states.filter((s) => s.state === "LOCKED");

describe("the lease's signing key leaves the key set", () => {
  it("the box stays ACTIVE, reconnects saying it holds no lease, refuses the removed key's leases and adopts the new key's", async () => {
    const { box, events, replacing, server, clock } = await streamingBox();
    const { next, first } = await revokeLeaseKey(server);
    expect(replacing).toEqual([clock.now() + WINDOW_MS]);
    expect(box.state()).toEqual({ state: "ACTIVE" });
    expect(box.status().leaseReplaceBy).toBe(replacing[0]);
    expect(events.rejections).toEqual([]);

    await waitFor(() => server.current() !== first && (server.current()?.requests.length ?? 0) >= 1, "reconnect");
    const hello = server.current()!.requests[0]!;
    expect(hello.kind.case === "hello" && hello.kind.value.lastLeaseSeq).toBe(0n);
    // Stored with the window, so a restart resumes it rather than trusting the lease as if fine.
    await waitFor(() => readStateFile(world.stateFile)!.leaseReplacement?.deadline === replacing[0], "window stored");

    server.pushDirective(DirectiveType.RENEW_LEASE, { leaseToken: server.signLease() });
    await waitFor(() => events.rejections.length === 1, "old key refused");
    expect(events.rejections[0]!.code).toBe("TOKEN_UNKNOWN_KEY");
    expect(box.state()).toEqual({ state: "ACTIVE" });

    const ok = server.pushDirective(DirectiveType.RENEW_LEASE, { leaseToken: server.signLease({ key: next }) });
    await waitFor(() => ackedIds(server.current()).includes(ok.id), "new-key lease ack");
    expect(box.status()).toMatchObject({ state: "ACTIVE", leaseSeq: 3, leaseReplaceBy: null });
    await waitFor(() => readStateFile(world.stateFile)!.highestLeaseSeq === 3, "fresh lease stored");
    expect(readStateFile(world.stateFile)!.leaseReplacement).toBeUndefined();

    // The window is closed: its deadline passing changes nothing.
    await clock.advance(2 * WINDOW_MS);
    expect(box.state()).toEqual({ state: "ACTIVE" });
    expect(lockedStates(events)).toEqual([]);
  });

  it("with no fresh lease, the box drops its lease and locks (NO_LEASE) exactly at the deadline", async () => {
    const { box, events, server, clock } = await streamingBox();
    await revokeLeaseKey(server);
    // The server keeps acking beats but never sends a lease.
    await clock.advance(WINDOW_MS - 1);
    expect(box.state()).toEqual({ state: "ACTIVE" });
    expect(lockedStates(events)).toEqual([]);
    await clock.advance(1);
    expect(lockedStates(events).map((s) => s.reason)).toEqual(["NO_LEASE"]);
    expect(events.rejections.map((r) => r.code)).toEqual(["TOKEN_UNKNOWN_KEY"]);
    expect(box.status()).toMatchObject({ leaseSeq: null, leaseReplaceBy: null });
    await waitFor(() => readStateFile(world.stateFile)!.leaseReplacement === undefined, "window closed in the file");
  });

  it("a restart inside the window resumes it with the same deadline; a restart after it loads without the lease", async () => {
    const { box, server, clock } = await streamingBox();
    await revokeLeaseKey(server);
    const deadline = box.status().leaseReplaceBy!;
    server.unreachable = true;
    await box.stop();

    await clock.advance(WINDOW_MS / 2);
    const again = await world.make({ leaseReplacementMs: WINDOW_MS });
    expect(again.status()).toMatchObject({ state: "GRACE", leaseSeq: 1, leaseReplaceBy: deadline });
    await again.stop();

    await clock.advanceTo(deadline);
    const late = await world.make({ leaseReplacementMs: WINDOW_MS });
    expect(late.status()).toMatchObject({ state: "LOCKED", reason: "NO_LEASE", leaseSeq: null, leaseReplaceBy: null });
  });

  it("a unary (HTTP/1.1) box asks for its fresh lease at once, not an interval later", async () => {
    const { box, replacing, server, clock } = await streamingBox("1.1");
    const next = await generateSigningKey();
    server.unaryDirectives.push(server.directive(DirectiveType.REFRESH_KEYS, { id: "", jwksJson: server.jwksJson([next]) }));
    await clock.advance(1_000);
    await waitFor(() => replacing.length === 1, "REFRESH_KEYS applied");
    // No time passes on the box's clock: the next call is not an interval away.
    const before = clock.now();
    await waitFor(() => (void clock.advance(0), server.unaryCalls.length >= 3), "the call asking for a fresh lease");
    expect(clock.now()).toBe(before);
    expect(server.unaryCalls[2]!.lastLeaseSeq).toBe(0n);
    expect(box.state()).toEqual({ state: "ACTIVE" });
  });
});
