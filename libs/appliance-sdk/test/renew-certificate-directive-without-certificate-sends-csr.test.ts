// @peculiar/x509 needs the Reflect polyfill loaded before it (as @lcp/pki does).
import "reflect-metadata";
import { afterEach, describe, expect, it } from "vitest";
import * as x509 from "@peculiar/x509";
import { X509Certificate, createPrivateKey } from "node:crypto";
import { issueCertificateFromCsr, loadCertificateAuthority } from "@lcp/pki";
import { readStateFile } from "@lcp/appliance-sdk";
import { DEPLOYMENT_ID, DirectiveType, ackedIds, type ServerStream } from "./support/scripted-server.js";
import { createWorld, record, type World } from "./support/fixture.js";
import { waitFor } from "./support/manual-clock.js";

let world: World;
afterEach(async () => world?.close());

const csrsOn = (stream: ServerStream | undefined) =>
  (stream?.requests ?? []).flatMap((r) => (r.kind.case === "renewCertificate" ? [r.kind.value.csrPem] : []));

describe("operator RENEW_CERTIFICATE without a certificate", () => {
  it("sends a CSR for the box's SPIFFE id, acks the request, adopts the issued certificate, and nothing is redelivered", async () => {
    world = await createWorld({ heartbeatIntervalMs: 1_000 });
    const { server, clock } = world;
    const box = await world.make();
    const events = record(box);
    await box.activate();
    box.start();
    await waitFor(() => (server.current()?.requests.length ?? 0) >= 2, "first beat");
    const spiffeId = server.pki.applianceId(DEPLOYMENT_ID);
    const oldKey = readStateFile(world.stateFile)!.privateKeyPem;
    const first = server.current()!;

    // What SendDirective(RENEW_CERTIFICATE) delivers: no certificate, the server has no CSR yet.
    const request = server.pushDirective(DirectiveType.RENEW_CERTIFICATE, { reason: "operator RENEW_CERTIFICATE" });
    await waitFor(() => ackedIds(first).includes(request.id), "request acked");
    const csrs = csrsOn(first);
    expect(csrs).toHaveLength(1);
    // The CSR precedes the ack on the stream, so a server that saw the ack has seen the CSR.
    const kinds = first.requests.map((r) => r.kind.case);
    expect(kinds.indexOf("renewCertificate")).toBeLessThan(kinds.indexOf("ack"));

    // A valid PKCS#10 for exactly our SPIFFE id, with a new key that is kept in the state file.
    const csr = new x509.Pkcs10CertificateRequest(csrs[0]!);
    expect(await csr.verify()).toBe(true);
    const san = csr.extensions.filter((e) => e.type === "2.5.29.17").flatMap((e) => new x509.SubjectAlternativeNameExtension(e.rawData).names.toJSON());
    expect(san).toEqual([{ type: "url", value: spiffeId }]);
    const pendingKey = readStateFile(world.stateFile)!.pendingPrivateKeyPem;
    expect(pendingKey).not.toBeNull();
    expect(pendingKey).not.toBe(oldKey);

    // The control plane issues from that CSR and answers with RENEW_CERTIFICATE carrying the cert.
    const ca = await loadCertificateAuthority(server.pki.applianceCa);
    const issued = await issueCertificateFromCsr(ca, { csrPem: csrs[0]!, spiffeId, validityMs: 30 * 86_400_000 });
    if (!issued.ok) throw new Error(issued.message);
    expect(new X509Certificate(issued.certPem).checkPrivateKey(createPrivateKey(pendingKey!))).toBe(true);
    const streams = server.streams.length;
    const answer = server.pushDirective(DirectiveType.RENEW_CERTIFICATE, {
      reason: "certificate renewal",
      certificatePem: issued.certPem,
      certificateChainPem: [server.pki.applianceCa.certPem],
    });
    await waitFor(() => server.streams.length > streams && (server.current()?.requests.length ?? 0) >= 2, "reconnect on the new certificate");
    expect(ackedIds(first)).toEqual([request.id, answer.id]);
    expect(server.current()!.requests[0]!.kind.case).toBe("hello");
    await waitFor(() => readStateFile(world.stateFile)!.certificatePem === issued.certPem, "certificate stored");
    const stored = readStateFile(world.stateFile)!;
    expect(stored.privateKeyPem).toBe(pendingKey);
    expect(stored.pendingPrivateKeyPem).toBeNull();

    // Both are acked, so the server has nothing to redeliver; were the request redelivered anyway
    // (an ack lost), it is acked again without asking for another certificate.
    const second = server.current()!;
    second.push({ $typeName: "licensing.v1.HeartbeatResponse", kind: { case: "directive", value: request } });
    await waitFor(() => ackedIds(second).includes(request.id), "redelivery acked");
    await clock.advance(5_000);
    expect(server.streams.flatMap((s) => csrsOn(s))).toHaveLength(1);
    expect(events.directives.map((e) => [e.id, e.outcome])).toEqual([
      [request.id, "applied"],
      [answer.id, "applied"],
      [request.id, "duplicate"],
    ]);
    expect(events.errors).toEqual([]);
    expect(box.state()).toEqual({ state: "ACTIVE" });
  });

  it("over HTTP/1.1 (no stream to carry a CSR) the request is left unacked", async () => {
    world = await createWorld();
    const box = await world.make({ httpVersion: "1.1" });
    const events = record(box);
    await box.activate();
    const request = world.server.directive(DirectiveType.RENEW_CERTIFICATE);
    world.server.unaryDirectives.push(request);
    await box.sendHeartbeatOnce();
    await box.sendHeartbeatOnce();
    expect(world.server.unaryCalls.flatMap((c) => c.ackedDirectiveIds)).not.toContain(request.id);
    expect(events.directives.map((e) => e.outcome)).toEqual(["ignored", "ignored"]);
    expect(readStateFile(world.stateFile)!.pendingPrivateKeyPem).toBeNull();
  });
});
