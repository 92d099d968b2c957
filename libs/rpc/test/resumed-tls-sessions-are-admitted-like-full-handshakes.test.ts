/**
 * TLS session resumption (after a kill -9): a box that kept its session ticket resumes instead of
 * redoing the full handshake, and a resumed connection is admitted exactly as a full handshake
 * would be — same principal; a revoked serial, a certificate that expired since, and a trust set
 * that dropped its CA all refused with the full handshake's code. Real mTLS on port 0; the client
 * keeps its ticket as the appliance SDK does (`socket.on("session")`, `session` when redialling).
 */
import { randomBytes, X509Certificate } from "node:crypto";
import * as tls from "node:tls";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError, createClient, type ConnectRouter } from "@connectrpc/connect";
import { Http2SessionManager, createGrpcTransport } from "@connectrpc/connect-node";
import { createCertificateAuthority, generateKeyAndCsr, issueCertificateFromCsr, loadCertificateAuthority } from "@lcp/pki";
import { ApplianceService } from "@lcp/proto/licensing/v1/appliance_service_pb";
import { createServer, principalKey, type Principal } from "@lcp/rpc";
import { createTestPki, type TestApplianceCertificate, type TestPki } from "@lcp/testing/pki";
import { startTestServer, type TestServer } from "@lcp/testing/server";
import { bareServerOptions } from "./bare-server-options.js";

/** What one call on a fresh connection saw. */
interface Dialled {
  readonly code: string;
  readonly message: string;
  readonly reused: boolean;
}

/** A box's TLS client: one connection per call, offering the last ticket it received. */
function boxDialer(pki: TestPki, cert: { certPem: string; keyPem: string }) {
  let ticket: Buffer | undefined;
  return {
    get ticket() {
      return ticket;
    },
    set ticket(offered: Buffer | undefined) {
      ticket = offered;
    },
    forget() {
      ticket = undefined;
    },
    async call(url: string): Promise<Dialled> {
      let socket: tls.TLSSocket | undefined;
      const sessionManager = new Http2SessionManager(url, {}, {
        createConnection: (authority: URL) => {
          socket = tls.connect({
            host: authority.hostname,
            port: Number(authority.port),
            servername: "localhost",
            ALPNProtocols: ["h2"],
            ca: pki.ca.certPem,
            cert: cert.certPem,
            key: cert.keyPem,
            ...(ticket ? { session: ticket } : {}),
          });
          socket.on("session", (session: Buffer) => (ticket = session));
          return socket;
        },
      });
      const client = createClient(ApplianceService, createGrpcTransport({ baseUrl: url, sessionManager }));
      try {
        await client.sendHeartbeat({ licenseId: "lic-1" });
        return { code: "ok", message: "", reused: socket!.isSessionReused() };
      } catch (err) {
        const e = ConnectError.from(err);
        return { code: Code[e.code]!, message: e.rawMessage, reused: socket?.isSessionReused() ?? false };
      } finally {
        sessionManager.abort();
      }
    },
  };
}

/** The same call on a connection resumed with the box's ticket, then on a full handshake. */
async function resumedThenFull(box: ReturnType<typeof boxDialer>, url: string): Promise<{ resumed: Dialled; full: Dialled }> {
  const resumed = await box.call(url);
  box.forget();
  return { resumed, full: await box.call(url) };
}

/** Issued `now` minus the validity but for 3 s: expires about 3 s from now. */
const expiringSoon = (validityMs: number) => new Date(Date.now() - validityMs + 3_000);

/**
 * A box calls once while its chain is valid, then again on a resumed and on a full handshake once
 * `expiresAt` (its certificate's or its CA's end) has passed.
 */
async function callsAcrossExpiry(pki: TestPki, url: string, cert: { certPem: string; keyPem: string }, expiresAt: Date): Promise<{ first: Dialled; resumed: Dialled; full: Dialled }> {
  const box = boxDialer(pki, cert);
  const first = await box.call(url);
  // X.509 times are whole seconds.
  await new Promise((resolve) => setTimeout(resolve, expiresAt.getTime() - Date.now() + 1_100));
  return { first, ...(await resumedThenFull(box, url)) };
}

/** A box certificate that expires about 3 s from now (the CA issues a minute at the least). */
async function expiringBox(pki: TestPki, deploymentId: string): Promise<[TestApplianceCertificate, Date]> {
  const cert = await pki.appliance(deploymentId, { validityMs: 60_000, now: expiringSoon(60_000) });
  return [cert, cert.notAfter];
}

describe("resumed TLS sessions are admitted like full handshakes", () => {
  let pki: TestPki;
  let t: TestServer | undefined;
  const seen: Principal[] = [];
  const revoked = new Set<string>();
  const register = (router: ConnectRouter) => {
    router.service(ApplianceService, {
      sendHeartbeat(_req, ctx) {
        seen.push(ctx.values.get(principalKey));
        return {};
      },
    });
  };
  const start = (secret: Uint8Array) =>
    startTestServer({
      name: "licensing",
      pki,
      register,
      sessionTickets: { secret },
      checkAppliance: async (p) => (revoked.has(p.serialNumber) ? { ok: false, reason: "certificate revoked or not issued by licensing" } : { ok: true }),
    });

  beforeAll(async () => {
    pki = await createTestPki();
  });
  afterEach(async () => {
    await t?.close();
    t = undefined;
    seen.length = 0;
  });

  it("resumes with the ticket of the last full handshake and admits the same principal", async () => {
    t = await start(randomBytes(48));
    const box = boxDialer(pki, await pki.appliance("dep-resume"));
    expect(await box.call(t.url)).toEqual({ code: "ok", message: "", reused: false });
    expect(box.ticket).toBeInstanceOf(Buffer);
    // Twice: node issues no new ticket on a resumed connection, so the box keeps offering the one
    // its full handshake got, and it keeps working.
    expect(await box.call(t.url)).toEqual({ code: "ok", message: "", reused: true });
    expect(await box.call(t.url)).toEqual({ code: "ok", message: "", reused: true });
    expect(seen).toHaveLength(3);
    expect(seen[0]).toMatchObject({ kind: "appliance", deploymentId: "dep-resume" });
    expect(seen[1]).toEqual(seen[0]);
    expect(seen[2]).toEqual(seen[0]);
  });

  it("refuses a serial revoked since the ticket was issued, with the full handshake's code", async () => {
    t = await start(randomBytes(48));
    const cert = await pki.appliance("dep-revoked-later", { validityMs: 86_400_000 });
    const box = boxDialer(pki, cert);
    expect((await box.call(t.url)).code).toBe("ok");
    revoked.add(cert.serialNumber);
    const { resumed, full } = await resumedThenFull(box, t.url);
    expect(resumed.reused).toBe(true);
    expect(full.reused).toBe(false);
    expect(resumed.code).toBe("Unauthenticated");
    expect(resumed).toEqual({ ...full, reused: true });
    expect(seen).toHaveLength(1);
  });

  it("refuses a certificate that has expired since the ticket was issued, as a full handshake does", async () => {
    t = await start(randomBytes(48));
    const { first, resumed, full } = await callsAcrossExpiry(pki, t.url, ...(await expiringBox(pki, "dep-expiring")));
    expect(first.code).toBe("ok");
    expect(resumed.reused).toBe(true);
    expect(full).toEqual({ code: "Unauthenticated", message: "client certificate not trusted (CERT_HAS_EXPIRED)", reused: false });
    expect(resumed).toEqual({ ...full, reused: true });
    expect(seen).toHaveLength(1);
  });

  it("refuses a certificate whose CA has expired since the ticket was issued, as a full handshake does", async () => {
    // An appliance CA that ends in about 3 s, trusted by the listener, and a box it issued.
    const caPair = await createCertificateAuthority({ commonName: "short-lived appliance CA", validityDays: 1, now: expiringSoon(86_400_000) });
    const ca = await loadCertificateAuthority(caPair);
    const spiffeId = pki.applianceId("dep-ca-expiring");
    const { keyPem, csrPem } = await generateKeyAndCsr({ spiffeId, commonName: "dep-ca-expiring" });
    const issued = await issueCertificateFromCsr(ca, { csrPem, spiffeId, validityMs: 86_400_000 });
    if (!issued.ok) throw new Error(issued.message);
    t = await startTestServer({ name: "licensing", pki, register, applianceCa: [caPair.certPem], sessionTickets: { secret: randomBytes(48) } });
    const caEnd = new Date(new X509Certificate(caPair.certPem).validTo);
    const { first, resumed, full } = await callsAcrossExpiry(pki, t.url, { certPem: issued.certPem, keyPem }, caEnd);
    expect(first.code).toBe("ok");
    expect(resumed.reused).toBe(true);
    expect(full).toEqual({ code: "Unauthenticated", message: "client certificate not trusted (CERT_HAS_EXPIRED)", reused: false });
    expect(resumed).toEqual({ ...full, reused: true });
  });

  it("does not resume a ticket issued under a trust set that no longer includes the box's CA", async () => {
    t = await start(randomBytes(48));
    const box = boxDialer(pki, await pki.appliance("dep-trust"));
    expect((await box.call(t.url)).code).toBe("ok");
    expect((await box.call(t.url)).reused).toBe(true);
    const ticket = box.ticket;
    t.server.setApplianceTrust([pki.foreignCa.certPem]);
    const { resumed: offered, full } = await resumedThenFull(box, t.url);
    expect(offered.reused).toBe(false);
    expect(offered.code).toBe("Unauthenticated");
    expect(offered).toEqual(full);
    // The same trust set again gives the same ticket key: the old ticket resumes again.
    t.server.setApplianceTrust([pki.applianceCa.certPem]);
    box.ticket = ticket;
    expect(await box.call(t.url)).toEqual({ code: "ok", message: "", reused: true });
  });

  it("resumes across a restart with the same secret, and falls back to a full handshake with another", async () => {
    const secret = randomBytes(48);
    t = await start(secret);
    const box = boxDialer(pki, await pki.appliance("dep-restart"));
    expect((await box.call(t.url)).reused).toBe(false);
    const ticket = box.ticket;
    await t.close();
    t = await start(secret);
    expect(await box.call(t.url)).toEqual({ code: "ok", message: "", reused: true });
    await t.close();
    t = await start(randomBytes(48));
    // Silently: the call succeeds on a full handshake, which brings a ticket for the new key.
    expect(await box.call(t.url)).toEqual({ code: "ok", message: "", reused: false });
    expect(box.ticket).not.toEqual(ticket);
    expect(await box.call(t.url)).toEqual({ code: "ok", message: "", reused: true });
    expect(new Set(seen.map((p) => JSON.stringify(p))).size).toBe(1);
  });

  it("refuses a secret that is not 48 bytes, or a lifetime beyond TLS 1.3's week", async () => {
    const base = await bareServerOptions(pki, "licensing", register);
    await expect(createServer({ ...base, sessionTickets: { secret: randomBytes(32) } })).rejects.toThrow(/48 bytes, got 32/);
    await expect(createServer({ ...base, sessionTickets: { secret: randomBytes(48), lifetimeS: 8 * 86_400 } })).rejects.toThrow(/lifetimeS/);
  });
});

describe("a listener that demands client certificates", () => {
  it("drops a resumed connection whose certificate has expired since, as its full handshake would", async () => {
    const pki = await createTestPki();
    let served = 0;
    const t = await startTestServer({
      name: "licensing",
      pki,
      requireClientCertificate: true,
      sessionTickets: { secret: randomBytes(48) },
      register: (router) => router.service(ApplianceService, { sendHeartbeat: () => (served++, {}) }),
    });
    try {
      const { first, resumed, full } = await callsAcrossExpiry(pki, t.url, ...(await expiringBox(pki, "dep-strict")));
      expect(first.code).toBe("ok");
      // TLS 1.3: the client has finished its side when the server refuses, so both see the
      // connection drop under the call (Canceled), and no call is served on either.
      expect(full).toMatchObject({ code: "Canceled", reused: false });
      expect(resumed.code).toBe(full.code);
      expect(served).toBe(1);
    } finally {
      await t.close();
    }
  });
});
