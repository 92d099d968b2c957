import { X509Certificate } from "node:crypto";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  applianceSpiffeId,
  certificateUris,
  createCertificateAuthority,
  generateKeyAndCsr,
  issueCertificateFromCsr,
  issueServerAndServiceCertificate,
  loadCertificateAuthority,
  type PemKeyPair,
} from "../src/index.js";

// Real TLS: a server on port 0 that demands client certificates from the service CA and the
// appliance CA (the bundle every app trusts), and clients presenting various certificates.
let caPair: PemKeyPair;
let server: tls.Server;
let port: number;
let licensing: PemKeyPair;
let audit: PemKeyPair;
let foreign: PemKeyPair;
let appliance: PemKeyPair & { serialNumber: string };
const accepted: { uris: string[]; serialNumber: string }[] = [];
let rejected = 0;

beforeAll(async () => {
  caPair = await createCertificateAuthority({ commonName: "service CA", validityDays: 30 });
  const applianceCaPair = await createCertificateAuthority({ commonName: "appliance CA", validityDays: 30 });
  const foreignCaPair = await createCertificateAuthority({ commonName: "foreign CA", validityDays: 30 });
  const ca = await loadCertificateAuthority(caPair);
  const foreignCa = await loadCertificateAuthority(foreignCaPair);
  const opts = { trustDomain: "lcp.local", validityDays: 1 };
  licensing = await issueServerAndServiceCertificate(ca, { ...opts, service: "licensing" });
  audit = await issueServerAndServiceCertificate(ca, { ...opts, service: "audit" });
  // Same identity, wrong issuer: only the chain can tell it apart.
  foreign = await issueServerAndServiceCertificate(foreignCa, { ...opts, service: "audit" });
  const spiffeId = applianceSpiffeId("lcp.local", "dep-1");
  const { keyPem, csrPem } = await generateKeyAndCsr({ spiffeId, commonName: "dep-1" });
  const issued = await issueCertificateFromCsr(await loadCertificateAuthority(applianceCaPair), { csrPem, spiffeId, validityMs: 3_600_000 });
  if (!issued.ok) throw new Error(issued.message);
  appliance = { certPem: issued.certPem, keyPem, serialNumber: issued.serialNumber };

  server = tls.createServer({
    key: licensing.keyPem,
    cert: licensing.certPem,
    ca: [caPair.certPem, applianceCaPair.certPem],
    requestCert: true,
    rejectUnauthorized: true,
  });
  server.on("secureConnection", (socket) => {
    const peer = socket.getPeerCertificate();
    accepted.push({ uris: certificateUris(new X509Certificate(peer.raw)), serialNumber: peer.serialNumber });
    socket.end("ok");
  });
  server.on("tlsClientError", () => {
    rejected++;
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

/** Connects, returns the data the server sent or the error the handshake ended with. */
async function connect(client: PemKeyPair | null, host = "localhost"): Promise<{ data?: string; error?: Error }> {
  return new Promise((resolve) => {
    const socket = tls.connect({
      host: "127.0.0.1",
      port,
      servername: host === "localhost" ? host : undefined,
      ca: caPair.certPem,
      ...(client ? { key: client.keyPem, cert: client.certPem } : {}),
      checkServerIdentity: (_name, cert) => tls.checkServerIdentity(host, cert),
    });
    let data = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => (data += chunk));
    socket.on("end", () => resolve({ data }));
    socket.on("error", (error) => {
      socket.destroy();
      resolve({ error });
    });
  });
}

async function waitFor(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(condition()).toBe(true);
}

describe("mTLS with issued certificates", () => {
  it("accepts a service certificate and exposes its SPIFFE identity; the server certificate matches localhost", async () => {
    const before = accepted.length;
    expect(await connect(audit)).toEqual({ data: "ok" });
    expect(accepted[before]!.uris).toEqual(["spiffe://lcp.local/service/audit"]);
  });

  it("matches the server certificate for 127.0.0.1 too", async () => {
    expect(await connect(audit, "127.0.0.1")).toEqual({ data: "ok" });
  });

  it("accepts an appliance certificate from the appliance CA, whose serial matches getPeerCertificate()", async () => {
    const before = accepted.length;
    expect(await connect(appliance)).toEqual({ data: "ok" });
    expect(accepted[before]).toEqual({ uris: ["spiffe://lcp.local/appliance/dep-1"], serialNumber: appliance.serialNumber });
  });

  it("refuses the handshake for a certificate from a foreign CA, even with a valid-looking identity", async () => {
    const before = { accepted: accepted.length, rejected };
    const result = await connect(foreign);
    // Under TLS 1.3 the client finishes its side first, so it may see an alert or just a close;
    // what matters is that the server never accepted the connection and never answered.
    expect(result.data ?? "").not.toBe("ok");
    await waitFor(() => rejected === before.rejected + 1);
    expect(accepted.length).toBe(before.accepted);
  });

  it("refuses a client without a certificate where the listener demands one", async () => {
    const before = { accepted: accepted.length, rejected };
    expect((await connect(null)).data ?? "").not.toBe("ok");
    await waitFor(() => rejected === before.rejected + 1);
    expect(accepted.length).toBe(before.accepted);
  });
});
