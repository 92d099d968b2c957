import { afterEach, describe, expect, it } from "vitest";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { issueCertificateFromCsr, loadCertificateAuthority, generateKeyAndCsr } from "@lcp/pki";
import { readStateFile } from "@lcp/appliance-sdk";
import { DirectiveType, ackedIds, beatCount } from "./support/scripted-server.js";
import { createWorld, record, type World } from "./support/fixture.js";
import { waitFor } from "./support/manual-clock.js";

let world: World;
afterEach(async () => world?.close());

async function streamingBox() {
  world = await createWorld({ heartbeatIntervalMs: 1_000 });
  const box = await world.make();
  const events = record(box);
  await box.activate();
  box.start();
  await waitFor(() => (world.server.current()?.requests.length ?? 0) >= 2, "first beat");
  return { box, events, server: world.server, clock: world.clock };
}

describe("operator directives", () => {
  it("SET_INTERVAL changes the beat cadence and is acked", async () => {
    const { box, server, clock } = await streamingBox();
    let before = beatCount(server.current());
    await clock.advance(10_000);
    expect(beatCount(server.current()) - before).toBe(10);

    const d = server.pushDirective(DirectiveType.SET_INTERVAL, { heartbeatInterval: durationFromMs(5_000) });
    await waitFor(() => ackedIds(server.current()).includes(d.id), "SET_INTERVAL ack");
    expect(box.status().heartbeatIntervalMs).toBe(5_000);
    before = beatCount(server.current());
    await clock.advance(20_000);
    expect(beatCount(server.current()) - before).toBe(4);
    expect(box.state()).toEqual({ state: "ACTIVE" });
  });

  it("SET_INTERVAL outside 1 s..1 h is ignored and not acked", async () => {
    const { box, events, server } = await streamingBox();
    const d = server.pushDirective(DirectiveType.SET_INTERVAL, { heartbeatInterval: durationFromMs(10) });
    await waitFor(() => events.directives.length === 1, "directive handled");
    expect(events.directives[0]!.outcome).toBe("ignored");
    expect(ackedIds(server.current())).not.toContain(d.id);
    expect(box.status().heartbeatIntervalMs).toBe(1_000);
  });

  it("RENEW_CERTIFICATE adopts a certificate for its own key, stores it and reconnects with a new hello; one for a key it does not hold is discarded (acked, not redelivered)", async () => {
    const { events, server } = await streamingBox();
    const ca = await loadCertificateAuthority(server.pki.applianceCa);
    const spiffeId = server.pki.applianceId("dep-0001");

    const stranger = await generateKeyAndCsr({ spiffeId, commonName: "dep-0001" });
    const foreign = await issueCertificateFromCsr(ca, { csrPem: stranger.csrPem, spiffeId, validityMs: 86_400_000 });
    if (!foreign.ok) throw new Error(foreign.message);
    const bad = server.pushDirective(DirectiveType.RENEW_CERTIFICATE, { certificatePem: foreign.certPem });
    await waitFor(() => events.directives.length === 1, "foreign certificate handled");
    expect(events.directives[0]).toMatchObject({ id: bad.id, outcome: "discarded" });
    await waitFor(() => ackedIds(server.current()).includes(bad.id), "the discarded certificate acked");
    expect(readStateFile(world.stateFile)!.certificatePem).not.toBe(foreign.certPem);

    // The CA re-issues for the key the box already holds (a CSR signed with that key).
    const own = await issueCertificateFromCsr(ca, { csrPem: await csrForKey(readStateFile(world.stateFile)!.privateKeyPem), spiffeId, validityMs: 86_400_000 });
    if (!own.ok) throw new Error(own.message);
    const streams = server.streams.length;
    const good = server.pushDirective(DirectiveType.RENEW_CERTIFICATE, { certificatePem: own.certPem, certificateChainPem: [server.pki.applianceCa.certPem] });
    await waitFor(() => server.streams.length > streams && (server.current()?.requests.length ?? 0) >= 1, "reconnect");
    expect(ackedIds(server.streams[streams - 1])).toEqual([bad.id, good.id]);
    expect(server.current()!.requests[0]!.kind.case).toBe("hello");
    await waitFor(() => readStateFile(world.stateFile)!.certificatePem === own.certPem, "certificate stored");
  });
});

/** A PKCS#10 CSR signed with an existing P-256 key (PEM PKCS#8). */
async function csrForKey(keyPem: string): Promise<string> {
  const { webcrypto, createPrivateKey, createPublicKey } = await import("node:crypto");
  const x509 = await import("@peculiar/x509");
  const key = createPrivateKey(keyPem);
  const algorithm = { name: "ECDSA", namedCurve: "P-256" };
  const privateKey = await webcrypto.subtle.importKey("pkcs8", key.export({ format: "der", type: "pkcs8" }), algorithm, true, ["sign"]);
  const publicKey = await webcrypto.subtle.importKey("spki", createPublicKey(key).export({ format: "der", type: "spki" }), algorithm, true, ["verify"]);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: "CN=dep-0001",
    keys: { privateKey, publicKey },
    signingAlgorithm: { name: "ECDSA", hash: "SHA-256" },
  });
  return csr.toString("pem");
}
