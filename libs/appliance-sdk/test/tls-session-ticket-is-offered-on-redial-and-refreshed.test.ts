/**
 * The SDK's TLS session tickets over real TLS (an @lcp/rpc server with stable ticket keys): the
 * last ticket is kept and offered on the next connection (which resumes), never for another
 * certificate (a renewed box must present its new one), a ticket the server cannot use or cannot
 * even parse falls back to a full handshake silently, and `refreshTicket` fetches a fresh one on a
 * short connection of its own.
 */
import { randomBytes } from "node:crypto";
import * as http2 from "node:http2";
import type { TLSSocket } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionTicketCache, refreshTicket, resumingConnection } from "@lcp/appliance-sdk";
import { ApplianceService } from "@lcp/proto/licensing/v1/appliance_service_pb";
import { createTestPki, type TestApplianceCertificate, type TestPki } from "@lcp/testing/pki";
import { startTestServer, type TestServer } from "@lcp/testing/server";

describe("the SDK's TLS session tickets", () => {
  let pki: TestPki;
  let t: TestServer;
  let cert: TestApplianceCertificate;
  beforeAll(async () => {
    pki = await createTestPki();
    cert = await pki.appliance("dep-tickets");
    t = await startTestServer({
      name: "licensing",
      pki,
      sessionTickets: { secret: randomBytes(48) },
      register: (router) => router.service(ApplianceService, { sendHeartbeat: () => ({}) }),
    });
  });
  afterAll(() => t?.close());

  const tlsOf = (c: { certPem: string; keyPem: string }) => ({ ca: pki.ca.certPem, cert: c.certPem, key: c.keyPem });

  /** Connects as http2.connect does for the SDK; resolves with whether TLS resumed. */
  const connect = (tickets: SessionTicketCache, c: { certPem: string; keyPem: string } = cert) =>
    new Promise<boolean>((resolve, reject) => {
      let socket: TLSSocket | undefined;
      const dial = resumingConnection(tlsOf(c), c.certPem, tickets);
      const session = http2.connect(t.url, { createConnection: (authority: URL) => (socket = dial(authority)) });
      session.once("error", reject);
      // A round trip after the handshake: the server's tickets come before its answer.
      session.once("connect", () =>
        session.ping((err) => {
          session.close();
          if (err) reject(err);
          else resolve(socket!.isSessionReused());
        }),
      );
    });

  it("keeps the ticket of a full handshake and resumes with it on the next connection", async () => {
    const tickets = new SessionTicketCache();
    expect(await connect(tickets)).toBe(false);
    expect(tickets.offer(cert.certPem)).toBeInstanceOf(Buffer);
    expect(await connect(tickets)).toBe(true);
    expect(await connect(tickets)).toBe(true);
  });

  it("never offers a ticket for another certificate (a renewed box presents its new one)", async () => {
    const tickets = new SessionTicketCache();
    await connect(tickets);
    const renewed = await pki.appliance("dep-tickets", { validityMs: 86_400_000 });
    expect(tickets.offer(renewed.certPem)).toBeUndefined();
    expect(await connect(tickets, renewed)).toBe(false);
    // The new certificate's ticket replaces the old one.
    expect(tickets.offer(cert.certPem)).toBeUndefined();
    expect(await connect(tickets, renewed)).toBe(true);
  });

  it("falls back to a full handshake, silently, with a ticket the server cannot use or OpenSSL cannot parse", async () => {
    const tickets = new SessionTicketCache();
    const other = await startTestServer({
      name: "licensing",
      pki,
      sessionTickets: { secret: randomBytes(48) },
      register: (router) => router.service(ApplianceService, { sendHeartbeat: () => ({}) }),
    });
    try {
      // A ticket from a server with other keys.
      const session = http2.connect(other.url, { createConnection: resumingConnection(tlsOf(cert), cert.certPem, tickets) });
      await new Promise((resolve) => session.once("connect", () => session.ping(resolve)));
      session.close();
      expect(tickets.offer(cert.certPem)).toBeInstanceOf(Buffer);
      expect(await connect(tickets)).toBe(false);
      expect(await connect(tickets)).toBe(true);
    } finally {
      await other.close();
    }
    tickets.keep(cert.certPem, randomBytes(200));
    expect(await connect(tickets)).toBe(false);
    expect(await connect(tickets)).toBe(true);
  });

  it("refreshTicket fetches a new ticket on a full handshake of its own, and says so", async () => {
    let now = 1_000;
    const tickets = new SessionTicketCache(() => now);
    await connect(tickets);
    const old = tickets.offer(cert.certPem)!;
    now = 5_000;
    expect(await refreshTicket(t.url, tlsOf(cert), cert.certPem, tickets)).toBe(true);
    expect(tickets.receivedAt(cert.certPem)).toBe(5_000);
    expect(tickets.offer(cert.certPem)).not.toEqual(old);
    expect(await connect(tickets)).toBe(true);
    // Nobody listening: false, never a rejection.
    await expect(refreshTicket("https://localhost:1", tlsOf(cert), cert.certPem, tickets)).resolves.toBe(false);
  });
});
