/**
 * Authentication reads a peer's presented issuers (a detailed `getPeerCertificate(true)` and a
 * parse of each) only when no anchor issued the leaf itself. Every box's certificate is issued by
 * the appliance CA directly, so 10,000 boxes reconnecting after a restart skip that work per
 * connection — while a leaf that needs its chain (here: a service identity the appliance CA
 * signed) still has it walked, and is still refused. Over real mTLS connections.
 */
import * as tls from "node:tls";
import type { AddressInfo } from "node:net";
import { X509Certificate } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKeyAndCsr, issueCertificateFromCsr, loadCertificateAuthority, serviceSpiffeId } from "@lcp/pki";
import { createAuthenticator, peerFromSocket, type Principal } from "@lcp/rpc";
import { createTestPki, type TestPki } from "@lcp/testing/pki";

describe("the peer's chain is walked only when the leaf needs it", () => {
  let pki: TestPki;
  let server: tls.Server;
  let port: number;
  const admitted: { principal: Principal; walks: number }[] = [];

  beforeAll(async () => {
    pki = await createTestPki();
    const own = await pki.service("licensing");
    const authenticate = createAuthenticator({
      trustDomain: pki.trustDomain,
      platformCas: () => [new X509Certificate(pki.ca.certPem)],
      applianceCas: () => [new X509Certificate(pki.applianceCa.certPem)],
    });
    server = tls.createServer({ key: own.keyPem, cert: own.certPem, ca: pki.clientCaPem, requestCert: true, rejectUnauthorized: false }, (socket) => {
      // Count the detailed reads the walk makes on this real socket.
      let walks = 0;
      const detailed = socket.getPeerCertificate.bind(socket);
      socket.getPeerCertificate = ((detailedForm?: boolean) => {
        if (detailedForm) walks++;
        return detailed(detailedForm as true);
      }) as typeof socket.getPeerCertificate;
      void authenticate(peerFromSocket(socket, socket, false), new Headers()).then((principal) => {
        admitted.push({ principal, walks });
        socket.end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  async function connectAs(pair: { certPem: string; keyPem: string }) {
    const before = admitted.length;
    const socket = tls.connect({ host: "127.0.0.1", port, ca: pki.ca.certPem, cert: pair.certPem, key: pair.keyPem, servername: "localhost" });
    socket.on("error", () => undefined);
    socket.resume();
    await new Promise<void>((resolve) => socket.once("close", () => resolve()));
    expect(admitted.length).toBe(before + 1);
    return admitted[before]!;
  }

  it("admits a box whose certificate the appliance CA issued without reading its chain", async () => {
    const box = await pki.appliance("dep-1");
    const { principal, walks } = await connectAs(box);
    expect(principal).toEqual({ kind: "appliance", deploymentId: "dep-1", serialNumber: box.serialNumber.toUpperCase() });
    expect(walks).toBe(0);
  });

  it("walks the chain of a leaf no anchor issued, and still refuses a service identity from the appliance CA", async () => {
    const applianceCa = await loadCertificateAuthority(pki.applianceCa);
    const { keyPem, csrPem } = await generateKeyAndCsr({ commonName: "licensing" });
    const issued = await issueCertificateFromCsr(applianceCa, { csrPem, spiffeId: serviceSpiffeId(pki.trustDomain, "licensing"), validityMs: 3_600_000 });
    if (!issued.ok) throw new Error(issued.message);
    const { principal, walks } = await connectAs({ certPem: issued.certPem, keyPem });
    expect(principal).toEqual({ kind: "anonymous", reason: "service certificate is not issued by the platform CA" });
    expect(walks).toBe(1);
  });
});
