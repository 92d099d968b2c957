/**
 * Rotating licensing's TLS files in place (as cert-manager and the kubelet do with a mounted
 * Secret): a renewed certificate and a new session-ticket secret are served to new connections
 * after a reload, while a box (the real SDK) keeps beating on the HTTP/2 connection it already
 * held — no reconnect. A certificate reload keeps the ticket key (tickets still resume); a new
 * ticket secret declines old tickets once (a full handshake, nothing dropped). A broken
 * replacement is refused with a log line naming why, and the certificate before it keeps serving.
 * Without a signal, TLS_RELOAD_INTERVAL picks the rotation up, and unchanged files do nothing.
 */
import { randomBytes } from "node:crypto";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { get } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createAppliance, type Appliance } from "@lcp/appliance-sdk";
import { certificateSerialNumber, issueServerAndServiceCertificate, loadCertificateAuthority, type PemKeyPair } from "@lcp/pki";
import { TLS_RELOADS_METRIC, type TlsFiles } from "@lcp/rpc";
import { testDatabases } from "@lcp/testing/db";
import { metricValue } from "@lcp/testing/metrics";
import { replaceTlsFiles, tlsHandshake } from "@lcp/testing/tls-files";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LicensingApp } from "../src/app.js";
import { FAST, setSettings, startReplica, until } from "./heartbeat-support.js";
import { provisionOnPrem, startHarness, TEST_ISSUER, type LicensingHarness } from "./support.js";

/** The reload counter as licensing exports it, under its prefix. */
const RELOADS = `licensing_${TLS_RELOADS_METRIC}`;

/** A licensing replica serving from files in its own folder, with its log lines kept. */
interface Rotating {
  app: LicensingApp;
  files: TlsFiles;
  ticketFile: string;
  logs: Record<string, unknown>[];
  close(): Promise<void>;
}

describe("TLS rotation under held streams", () => {
  // The rotation touches no storage: SQLite is enough.
  const tdb = testDatabases()[0]!;
  let h: LicensingHarness;
  let issue: (options?: { now?: Date; validityDays?: number }) => Promise<PemKeyPair>;
  const started: Rotating[] = [];

  beforeAll(async () => {
    h = await startHarness(tdb);
    await setSettings(h, FAST);
    const ca = await loadCertificateAuthority(h.pki.ca);
    issue = (options = {}) => issueServerAndServiceCertificate(ca, { service: "licensing", trustDomain: h.pki.trustDomain, validityDays: options.validityDays ?? 30, ...(options.now ? { now: options.now } : {}) });
  });
  afterAll(async () => {
    for (const r of started.splice(0)) await r.close();
    await h?.close();
  });

  /** Licensing on files it reads again on `reloadTls()` (and every `intervalMs`, if given). */
  async function startRotating(intervalMs = 0): Promise<Rotating> {
    const dir = await mkdtemp(join(tmpdir(), "lcp-tls-rotation-"));
    const files = { cert: join(dir, "tls.crt"), key: join(dir, "tls.key"), ca: join(dir, "ca.crt") };
    const ticketFile = join(dir, "ticket.key");
    const first = await issue();
    await replaceTlsFiles(files, first);
    await writeFile(files.ca, h.pki.ca.certPem);
    const secret = randomBytes(48);
    await writeFile(ticketFile, `${secret.toString("base64")}\n`, { mode: 0o600 });
    const logs: Record<string, unknown>[] = [];
    const logger = pino({ level: "info" }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
    const app = await startReplica(h, {
      tls: { ...first, caPem: h.pki.ca.certPem, source: "files", files },
      tlsReloadIntervalMs: intervalMs,
      sessionTicketSecret: new Uint8Array(secret),
      sessionTicketFile: ticketFile,
      adminPort: 0,
      logger,
    });
    const rotating = {
      app,
      files,
      ticketFile,
      logs,
      async close() {
        await app.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
    started.push(rotating);
    return rotating;
  }

  it("serves a renewed certificate and ticket secret to new connections while the box beats on the connection it held", async () => {
    const r = await startRotating();
    const { license } = await provisionOnPrem(h);
    const dir = await mkdtemp(join(tmpdir(), "lcp-tls-rotation-box-"));
    let box: Appliance | undefined;
    try {
      // No ticket refreshes of its own: every TLS connection the server counts from here on is ours.
      box = await createAppliance({
        baseUrl: r.app.url,
        caPem: h.pki.ca.certPem,
        licenseId: license.id,
        licenseToken: license.token,
        fingerprint: "rotation-box",
        stateFile: join(dir, "state.json"),
        issuer: TEST_ISSUER,
        trustDomain: h.pki.trustDomain,
        backoff: { initialMs: 50, maxMs: 250 },
        ticketRefreshMs: 0,
      });
      await box.activate();
      box.start();
      await until(async () => metricValue(await scrape(r), "licensing_heartbeat_streams") === 1, "the box's stream to be held");
      const connectionsBefore = await tlsConnections(r);
      const beatsBefore = metricValue(await scrape(r), "licensing_heartbeat_beats_total");
      const first = await handshake(r);
      expect(first.resumed).toBe(false);

      // A renewed certificate (same CA): new connections see its serial; the old ticket still resumes.
      const renewed = await issue();
      await replaceTlsFiles(r.files, renewed);
      expect(await r.app.reloadTls()).toMatchObject({ result: "applied", serialNumber: certificateSerialNumber(renewed.certPem), ticketKeyChanged: false });
      const afterRenewal = await handshake(r);
      expect(afterRenewal.serial).toBe(certificateSerialNumber(renewed.certPem));
      expect(afterRenewal.serial).not.toBe(first.serial);
      expect((await handshake(r, first.ticket)).resumed).toBe(true);

      // A new ticket secret: tickets issued before are declined once (a full handshake, not a failure).
      await writeFile(r.ticketFile, `${randomBytes(48).toString("hex")}\n`, { mode: 0o600 });
      expect(await r.app.reloadTls()).toMatchObject({ result: "applied", ticketKeyChanged: true });
      const afterTicketRotation = await handshake(r, afterRenewal.ticket);
      expect(afterTicketRotation).toMatchObject({ resumed: false, serial: certificateSerialNumber(renewed.certPem) });
      expect((await handshake(r, afterTicketRotation.ticket)).resumed).toBe(true);

      // The box kept beating on the stream it held before: no new TLS connection but our five handshakes.
      await until(async () => metricValue(await scrape(r), "licensing_heartbeat_beats_total") >= beatsBefore + 2, "two more beats on the held stream", 5_000);
      expect((await tlsConnections(r)) - connectionsBefore).toBe(5);
      expect(metricValue(await scrape(r), "licensing_heartbeat_streams")).toBe(1);
      expect(box.status().connected).toBe(true);

      // Recorded: one count per applied reload, and a log line naming the new serial.
      expect(metricValue(await scrape(r), RELOADS, { result: "applied" })).toBe(2);
      expect(r.logs.filter((l) => l["msg"] === "TLS material reloaded").map((l) => l["serialNumber"])).toEqual([certificateSerialNumber(renewed.certPem), certificateSerialNumber(renewed.certPem)]);
      // Unchanged files: nothing happens.
      expect(await r.app.reloadTls()).toEqual({ result: "unchanged" });
      expect(metricValue(await scrape(r), RELOADS, { result: "applied" })).toBe(2);
    } finally {
      await box?.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("refuses a broken replacement with a log line naming why, and the certificate before it keeps serving", async () => {
    const r = await startRotating();
    const good = await issue();
    await replaceTlsFiles(r.files, good);
    expect(await r.app.reloadTls()).toMatchObject({ result: "applied" });
    const other = await issue();
    const foreign = await h.pki.foreignService("licensing");
    const audit = await h.pki.service("audit");
    const expired = await issue({ now: new Date(Date.now() - 10 * 86_400_000), validityDays: 1 });
    const notYet = await issue({ now: new Date(Date.now() + 86_400_000) });
    const pem = (body: string) => `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----\n`;

    const cases: [string, () => Promise<void>, string][] = [
      ["a key of another certificate", () => replaceTlsFiles(r.files, { certPem: other.certPem, keyPem: good.keyPem }), "KEY_MISMATCH"],
      ["a certificate that is not PEM", () => replaceTlsFiles(r.files, { certPem: "garbage\n", keyPem: good.keyPem }), "FILE_UNREADABLE"],
      ["a PEM block of garbage", () => replaceTlsFiles(r.files, { certPem: pem("bm90IGEgY2VydGlmaWNhdGU="), keyPem: good.keyPem }), "CERT_UNPARSABLE"],
      ["a key that does not parse", () => replaceTlsFiles(r.files, { certPem: good.certPem, keyPem: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n" }), "KEY_UNPARSABLE"],
      ["a certificate of another CA", () => replaceTlsFiles(r.files, foreign), "CHAIN_UNTRUSTED"],
      ["an expired certificate", () => replaceTlsFiles(r.files, expired), "CERT_EXPIRED"],
      ["a certificate not valid yet", () => replaceTlsFiles(r.files, notYet), "CERT_NOT_YET_VALID"],
      ["another service's certificate", () => replaceTlsFiles(r.files, audit), "IDENTITY_CHANGED"],
      ["a missing key file", () => rm(r.files.key), "FILE_UNREADABLE"],
      ["a key file over 1 MiB", () => replaceTlsFiles(r.files, { certPem: good.certPem, keyPem: `${good.keyPem}${"#".repeat(1024 * 1024)}` }), "FILE_UNREADABLE"],
      ["a ticket secret of the wrong size", () => writeFile(r.ticketFile, "c2hvcnQ=\n", { mode: 0o600 }), "TICKET_KEY_INVALID"],
      ["a ticket secret others may read", () => writeFile(r.ticketFile, `${randomBytes(48).toString("base64")}\n`).then(() => chmod(r.ticketFile, 0o644)), "TICKET_KEY_INVALID"],
    ];
    for (const [what, write, code] of cases) {
      await replaceTlsFiles(r.files, good);
      await writeFile(r.ticketFile, `${randomBytes(48).toString("base64")}\n`, { mode: 0o600 });
      await chmod(r.ticketFile, 0o600);
      await r.app.reloadTls();
      const logged = r.logs.length;
      await write();
      expect(await r.app.reloadTls(), what).toMatchObject({ result: "refused", code });
      expect((await handshake(r)).serial, what).toBe(certificateSerialNumber(good.certPem));
      const lines = r.logs.slice(logged).filter((l) => l["msg"] === "TLS material refused; the current certificate keeps serving");
      expect(lines.map((l) => [l["level"], l["code"]]), what).toEqual([[40, code]]);
    }
    expect(metricValue(await scrape(r), RELOADS, { result: "refused" })).toBe(cases.length);
    // No key material in what was logged.
    expect(JSON.stringify(r.logs)).not.toContain(good.keyPem.split("\n")[1]!);
  });

  it("picks a rotation up every TLS_RELOAD_INTERVAL without a signal, and does nothing while the files stay the same", async () => {
    const r = await startRotating(50);
    const renewed = await issue();
    await replaceTlsFiles(r.files, renewed);
    await until(async () => (await handshake(r)).serial === certificateSerialNumber(renewed.certPem), "the renewed certificate to be served");
    // Many intervals later: one reload, one line, however often the unchanged files were read.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(metricValue(await scrape(r), RELOADS, { result: "applied" })).toBe(1);
    expect(r.logs.filter((l) => l["msg"] === "TLS material reloaded")).toHaveLength(1);

    // A broken set is reported once, not every interval; the renewed certificate keeps serving.
    await replaceTlsFiles(r.files, { certPem: (await issue()).certPem, keyPem: renewed.keyPem });
    await until(async () => metricValue(await scrape(r), RELOADS, { result: "refused" }) === 1, "the refusal");
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(metricValue(await scrape(r), RELOADS, { result: "refused" })).toBe(1);
    expect((await handshake(r)).serial).toBe(certificateSerialNumber(renewed.certPem));
  });

  /** A fresh TLS connection as a box would open it (offering `ticket`, if any). */
  const handshake = (r: Rotating, ticket?: Buffer) => tlsHandshake({ port: r.app.port, caPem: h.pki.ca.certPem, ticket });
});

/** `/metrics` from the admin port: plain HTTP, so scraping opens no TLS connection of its own. */
function scrape(r: Rotating): Promise<string> {
  return new Promise((resolve, reject) => {
    get(`http://127.0.0.1:${r.app.adminPort}/metrics`, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve(body));
    }).on("error", reject);
  });
}

async function tlsConnections(r: Rotating): Promise<number> {
  const text = await scrape(r);
  return (metricValue(text, "licensing_rpc_server_tls_connections_total", { resumed: "true" }) || 0) + (metricValue(text, "licensing_rpc_server_tls_connections_total", { resumed: "false" }) || 0);
}
