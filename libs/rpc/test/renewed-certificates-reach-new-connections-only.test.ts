/**
 * Both ends of a certificate renewal, over real mTLS on port 0:
 * - a client made with `tls: () => current` (as every service calls another with its identity)
 *   keeps its open HTTP/2 connection, with the certificate it was made with, and presents the
 *   renewed certificate on its next connection;
 * - a server without a stored ticket secret keeps its ticket key through `setTls`, so a renewal
 *   does not cost every client its session (node would draw a new key with the new context),
 *   while a changed trust set still declines old tickets; and `setTls` refuses a bad set with
 *   its code, the old certificate serving on.
 */
import type { Http2Session } from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ConnectRouter } from "@connectrpc/connect";
import { certificateSerialNumber, issueServerAndServiceCertificate, loadCertificateAuthority, type PemKeyPair } from "@lcp/pki";
import { SigningKeyService } from "@lcp/proto/signing/v1/signing_key_service_pb";
import { createClient, peerKey, TlsMaterialError, type ClientTls } from "@lcp/rpc";
import { createTestPki, type TestPki } from "@lcp/testing/pki";
import { startTestServer, type TestServer } from "@lcp/testing/server";
import { tlsHandshake } from "@lcp/testing/tls-files";

describe("renewed certificates reach new connections only", () => {
  let pki: TestPki;
  let t: TestServer;
  let renew: (service: string) => Promise<PemKeyPair>;
  /** Per call: the client certificate's serial and the HTTP/2 session it came on. */
  const seen: { serial: string; session: Http2Session }[] = [];
  const register = (router: ConnectRouter) =>
    router.service(SigningKeyService, {
      getJwks(_req, ctx) {
        const peer = ctx.values.get(peerKey)!;
        seen.push({ serial: peer.chain[0]?.serialNumber ?? "", session: peer.connection as Http2Session });
        return { jwksJson: '{"keys":[]}', kids: [] };
      },
    });

  beforeAll(async () => {
    pki = await createTestPki();
    const ca = await loadCertificateAuthority(pki.ca);
    renew = (service) => issueServerAndServiceCertificate(ca, { service, trustDomain: pki.trustDomain, validityDays: 30 });
    t = await startTestServer({ name: "signing-keys", pki, register });
  });
  afterAll(() => t?.close());

  it("a client following its identity presents the renewed certificate from its next connection on, and keeps the open one", async () => {
    const first = await pki.service("licensing");
    let current: ClientTls = { caPem: pki.ca.certPem, ...first };
    const client = createClient(SigningKeyService, { baseUrl: t.url, tls: () => current, retries: 0 });
    seen.length = 0;

    await client.getJwks({});
    const renewed = await renew("licensing");
    current = { caPem: pki.ca.certPem, ...renewed };
    await client.getJwks({});
    // The open connection was not torn down for the renewal: same session, the certificate it was made with.
    expect(seen[1]!.session).toBe(seen[0]!.session);
    expect(seen.map((s) => s.serial)).toEqual([certificateSerialNumber(first.certPem), certificateSerialNumber(first.certPem)]);

    // The server ends that connection (GOAWAY, as an idle timeout or a restart would): the next one carries the renewal.
    await new Promise<void>((resolve) => seen[0]!.session.close(() => resolve()));
    await client.getJwks({});
    expect(seen[2]!.session).not.toBe(seen[0]!.session);
    expect(seen[2]!.serial).toBe(certificateSerialNumber(renewed.certPem));
  });

  it("keeps the server's ticket key through a certificate renewal without a stored secret, and refuses a bad set", async () => {
    const before = await handshake(t);
    const renewed = await renew("signing-keys");
    expect(t.server.setTls({ tls: { ...renewed, caPem: pki.ca.certPem } })).toMatchObject({ serialNumber: certificateSerialNumber(renewed.certPem) });
    const resumed = await handshake(t, before.ticket);
    expect(resumed.resumed).toBe(true);
    const fresh = await handshake(t);
    expect(fresh.serial).toBe(certificateSerialNumber(renewed.certPem));

    // A bad set throws with its code; the renewed certificate keeps serving and tickets still resume.
    const other = await renew("signing-keys");
    expect(() => t.server.setTls({ tls: { certPem: other.certPem, keyPem: renewed.keyPem, caPem: pki.ca.certPem } })).toThrow(TlsMaterialError);
    expect(() => t.server.setTls({ tls: { ...renewed, caPem: pki.foreignCa.certPem } })).toThrow(/CHAIN_UNTRUSTED/);
    expect(() => t.server.setTls({ tls: { ...renewed, caPem: pki.ca.certPem }, ticketSecret: new Uint8Array(47) })).toThrow(TypeError);
    expect((await handshake(t)).serial).toBe(certificateSerialNumber(renewed.certPem));
    expect((await handshake(t, fresh.ticket)).resumed).toBe(true);

    // A changed trust set (another platform CA bundle) changes the ticket key: old tickets are declined once.
    t.server.setTls({ tls: { ...renewed, caPem: `${pki.ca.certPem}\n${pki.foreignCa.certPem}` } });
    expect((await handshake(t, fresh.ticket)).resumed).toBe(false);
  });

  const handshake = (server: TestServer, ticket?: Buffer) => tlsHandshake({ port: server.server.port, caPem: pki.ca.certPem, ticket });
});
