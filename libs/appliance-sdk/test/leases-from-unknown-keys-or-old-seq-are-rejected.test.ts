import { afterEach, describe, expect, it } from "vitest";
import { generateSigningKey, signJwt, TOKEN_TYPES } from "@lcp/tokens";
import { DirectiveType, ISSUER, ackedIds } from "./support/scripted-server.js";
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

describe("lease checks", () => {
  it("ignores a lease signed by a key outside its JWKS, reports it and does not ack", async () => {
    const { box, events, server } = await streamingBox();
    const stranger = await generateSigningKey();
    const d = server.pushDirective(DirectiveType.RENEW_LEASE, { leaseToken: server.signLease({ key: stranger }) });
    await waitFor(() => events.rejections.length === 1, "rejection");
    expect(events.rejections[0]).toMatchObject({ code: "TOKEN_UNKNOWN_KEY", directiveId: d.id, seq: 2 });
    expect(events.directives.at(-1)).toMatchObject({ id: d.id, outcome: "ignored" });
    expect(ackedIds(server.current())).not.toContain(d.id);
    expect(box.status().leaseSeq).toBe(1);
  });

  it("ignores and reports a lease whose seq is equal to or lower than the highest seen", async () => {
    const { box, events, server } = await streamingBox();
    const newer = server.pushDirective(DirectiveType.RENEW_LEASE, { leaseToken: server.signLease({ seq: 5 }) });
    await waitFor(() => ackedIds(server.current()).includes(newer.id), "seq 5 ack");
    expect(box.status().leaseSeq).toBe(5);

    const equal = server.pushDirective(DirectiveType.RENEW_LEASE, { leaseToken: server.signLease({ seq: 5, issuedAt: world.clock.trueNow() + 1_000 }) });
    const lower = server.pushDirective(DirectiveType.RENEW_LEASE, { leaseToken: server.signLease({ seq: 3 }) });
    await waitFor(() => events.rejections.length === 2, "two rejections");
    expect(events.rejections).toEqual([
      expect.objectContaining({ code: "LEASE_SEQ_NOT_NEWER", seq: 5, directiveId: equal.id }),
      expect.objectContaining({ code: "LEASE_SEQ_NOT_NEWER", seq: 3, directiveId: lower.id }),
    ]);
    expect(ackedIds(server.current())).not.toContain(equal.id);
    expect(ackedIds(server.current())).not.toContain(lower.id);
    expect(box.status().leaseSeq).toBe(5);
  });

  it("refuses a licence token passed off as a lease, and a lease for another box", async () => {
    const { events, server } = await streamingBox();
    server.pushDirective(DirectiveType.RENEW_LEASE, { leaseToken: server.licenseToken });
    server.pushDirective(DirectiveType.RENEW_LEASE, { leaseToken: server.signLease({ fingerprint: "another-box" }) });
    await waitFor(() => events.rejections.length === 2, "two rejections");
    expect(events.rejections.map((r) => r.code)).toEqual(["TOKEN_WRONG_TYPE", "LEASE_WRONG_FINGERPRINT"]);
  });

  it("refuses a lease from another issuer even when signed by a trusted key", async () => {
    const { events, server } = await streamingBox();
    const foreign = signJwt({
      typ: TOKEN_TYPES.lease,
      claims: { sub: "lic-0001", dep: "dep-0001", fph: "0".repeat(64), st: "ACTIVE", seq: 9, exp: Math.floor(world.clock.now() / 1000) + 600 },
      kid: server.signingKey.kid,
      privateKeyPkcs8Pem: server.signingKey.privateKeyPkcs8Pem,
      issuer: `${ISSUER}/evil`,
      now: new Date(world.clock.now()),
    });
    server.pushDirective(DirectiveType.RENEW_LEASE, { leaseToken: foreign });
    await waitFor(() => events.rejections.length === 1, "rejection");
    expect(events.rejections[0]!.code).toBe("TOKEN_BAD_ISSUER");
  });

  it("follows a renewed licence of its deployment (seq still guards replay) and keeps answering to the old id on load", async () => {
    const { box, events, server } = await streamingBox();
    const renewed: Array<{ from: string; to: string }> = [];
    box.on("license-renewed", (e) => renewed.push(e));
    const next = server.pushDirective(DirectiveType.RENEW_LEASE, { leaseToken: server.signLease({ seq: 2, licenseId: "lic-0002" }) });
    await waitFor(() => ackedIds(server.current()).includes(next.id), "ack of the renewed licence's lease");
    expect(renewed).toEqual([{ from: "lic-0001", to: "lic-0002" }]);
    expect(box.status()).toMatchObject({ licenseId: "lic-0002", leaseSeq: 2 });
    // A lease of the older licence, replayed: its seq is not newer.
    server.pushDirective(DirectiveType.RENEW_LEASE, { leaseToken: server.signLease({ seq: 1, licenseId: "lic-0001", issuedAt: world.clock.trueNow() + 5_000 }) });
    await waitFor(() => events.rejections.length === 1, "rejection");
    expect(events.rejections[0]).toMatchObject({ code: "LEASE_SEQ_NOT_NEWER", seq: 1 });
    expect(box.status().licenseId).toBe("lic-0002");

    // The host, still configured with the licence it was installed with, reads the state file.
    await box.stop();
    const again = await world.make();
    expect(again.status()).toMatchObject({ activated: true, licenseId: "lic-0002", leaseSeq: 2 });
    // Its hello names the licence it runs under now.
    const streams = server.streams.length;
    again.start();
    await waitFor(() => server.streams.length > streams && (server.current()?.requests.length ?? 0) >= 1, "hello");
    expect(server.current()!.requests[0]!.kind).toMatchObject({ case: "hello", value: { licenseId: "lic-0002" } });
    // A licence the box never ran under does not name the file.
    await expect(world.make({ licenseId: "lic-9999" })).rejects.toThrow(/belongs to licence lic-0002, not lic-9999/);
  });

  it("acks a redelivery of the lease it already holds without reporting it", async () => {
    const { events, server } = await streamingBox();
    const token = server.signLease();
    const first = server.pushDirective(DirectiveType.RENEW_LEASE, { leaseToken: token });
    await waitFor(() => ackedIds(server.current()).includes(first.id), "first ack");
    const again = server.pushDirective(DirectiveType.RENEW_LEASE, { leaseToken: token });
    await waitFor(() => ackedIds(server.current()).includes(again.id), "redelivery ack");
    expect(events.rejections).toEqual([]);
  });
});
