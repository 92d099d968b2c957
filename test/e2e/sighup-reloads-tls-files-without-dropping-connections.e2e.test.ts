/**
 * A running service (audit's main.ts, a real process) takes rotated TLS files on SIGHUP, as an
 * operator or a sidecar would signal it after cert-manager renewed the mounted Secret: new
 * connections get the renewed certificate, an HTTP/2 connection opened before keeps working on
 * the old one, a broken set is refused with a log line (the renewed certificate serving on), and
 * the signal no longer ends the process (node's default for SIGHUP): SIGTERM still stops it with 0.
 */
import type { X509Certificate } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { connect as connectH2, type ClientHttp2Session } from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { certificateSerialNumber, issueServerAndServiceCertificate, loadCertificateAuthority } from "@lcp/pki";
import { createTestPki, type TestPki } from "@lcp/testing/pki";
import { replaceTlsFiles, tlsHandshake } from "@lcp/testing/tls-files";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePorts, REPO_ROOT } from "../support/cluster.js";
import { hold, type Held } from "../support/processes.js";

describe("SIGHUP reloads a running service's TLS files", () => {
  let dir: string;
  let pki: TestPki;
  let audit: Held | undefined;
  let held: ClientHttp2Session | undefined;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "lcp-sighup-"));
    pki = await createTestPki();
  });
  afterAll(async () => {
    held?.destroy();
    audit?.kill();
    await rm(dir, { recursive: true, force: true });
  });

  it("serves the renewed certificate to new connections, keeps the open one, refuses a broken set and still stops on SIGTERM", async () => {
    const ca = await loadCertificateAuthority(pki.ca);
    const issue = () => issueServerAndServiceCertificate(ca, { service: "audit", trustDomain: pki.trustDomain, validityDays: 30 });
    const files = { cert: join(dir, "tls.crt"), key: join(dir, "tls.key"), ca: join(dir, "ca.crt") };
    const first = await issue();
    await replaceTlsFiles(files, first);
    await writeFile(files.ca, pki.ca.certPem);
    const [port] = await freePorts(1);
    audit = hold(process.execPath, ["--conditions=source", "--import", "tsx", join(REPO_ROOT, "apps/audit/src/main.ts")], {
      env: {
        ...process.env,
        DATA_DIR: join(dir, "data"),
        DATABASE_URL: "",
        PORT: String(port),
        LOG_LEVEL: "info",
        TLS_CERT_FILE: files.cert,
        TLS_KEY_FILE: files.key,
        TLS_CA_FILE: files.ca,
        // Only the signal reloads here.
        TLS_RELOAD_INTERVAL: "off",
      },
    });
    await audit.waitFor(/audit ready/);
    const url = `https://localhost:${port}`;
    held = connectH2(url, { ca: pki.ca.certPem });
    expect(await status(held)).toBe(200);
    const heldSocket = held.socket as unknown as { getPeerX509Certificate(): X509Certificate };
    expect(heldSocket.getPeerX509Certificate().serialNumber).toBe(certificateSerialNumber(first.certPem));

    const renewed = await issue();
    await replaceTlsFiles(files, renewed);
    audit.child.kill("SIGHUP");
    await audit.waitFor(new RegExp(`"serialNumber":"${certificateSerialNumber(renewed.certPem)}".*"msg":"TLS material reloaded"`));
    expect((await tlsHandshake({ port: port!, caPem: pki.ca.certPem })).serial).toBe(certificateSerialNumber(renewed.certPem));
    // The connection opened before is the same one, still answering.
    expect(held.closed || held.destroyed).toBe(false);
    expect(await status(held)).toBe(200);

    await replaceTlsFiles(files, { certPem: (await issue()).certPem, keyPem: renewed.keyPem });
    audit.child.kill("SIGHUP");
    await audit.waitFor(/"code":"KEY_MISMATCH".*"msg":"TLS material refused; the current certificate keeps serving"/);
    expect((await tlsHandshake({ port: port!, caPem: pki.ca.certPem })).serial).toBe(certificateSerialNumber(renewed.certPem));

    held.close();
    audit.child.kill("SIGTERM");
    expect(await audit.exited()).toEqual({ code: 0, signal: null });
  });
});

/** GET /metrics on an open HTTP/2 session: its status. */
function status(session: ClientHttp2Session): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ":path": "/metrics" });
    req.once("response", (headers) => resolve(Number(headers[":status"])));
    req.once("error", reject);
    req.resume();
    req.end();
  });
}
