/**
 * Renewal of the box's client certificate: before it runs out (less than a third of its life
 * left, checked once per stream) or when an operator asks (RENEW_CERTIFICATE without a
 * certificate). The box sends a fresh key's CSR on the heartbeat stream; the certificate comes
 * back as a RENEW_CERTIFICATE of its own, adopted by the directive core (directives.ts).
 */
import { X509Certificate } from "node:crypto";
import { DEFAULT_TRUST_DOMAIN, applianceSpiffeId, generateKeyAndCsr } from "@lcp/pki";
import type { ApplianceLogger } from "./api.js";
import type { ApplianceStateFile } from "./state-file.js";

// A certificate is renewed once less than this share of its lifetime is left.
const RENEW_CERTIFICATE_AT = 1 / 3;
// However often a stream is opened, a renewal is asked for at most this often.
const RENEWAL_RETRY_MS = 3_600_000;

/** Where a CSR goes: the stream it is sent on. */
export interface CsrSink {
  /** Queues the CSR on the stream. */
  send(csrPem: string): void;
  /** Aborted once the stream ended. */
  readonly signal: AbortSignal;
}

/** The heartbeat stream as a certificate renewal sees it. */
export interface RenewalStream {
  /** Sends a CSR on this stream, or joins the one already sent on it; true once it is queued. */
  requestCertificateRenewal(): Promise<boolean>;
}

/** What {@link CertificateRenewal} runs with. */
export interface CertificateRenewalHost {
  readonly clock: () => number;
  readonly trustDomain: string | undefined;
  readonly log: ApplianceLogger;
  /** The state file held now (null before activation). */
  file(): ApplianceStateFile | null;
  persist(): Promise<void>;
  reportError(error: unknown): void;
}

/** The certificate renewals of one box. */
export class CertificateRenewal {
  private requestedAt: number | null = null;

  constructor(private readonly host: CertificateRenewalHost) {}

  /**
   * Whether the certificate should be renewed: less than a third of its life is left, so the box
   * is never cut off by an expired client certificate while it is online. At most once an hour.
   */
  due(): boolean {
    const st = this.host.file();
    if (!st) return false;
    const now = this.host.clock();
    if (this.requestedAt !== null && now - this.requestedAt < RENEWAL_RETRY_MS) return false;
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(st.certificatePem);
    } catch {
      return false;
    }
    const from = Date.parse(cert.validFrom);
    const to = Date.parse(cert.validTo);
    return to - now < (to - from) * RENEW_CERTIFICATE_AT;
  }

  /** A renewed certificate was adopted: the next renewal may be asked for as soon as it is due. */
  adopted(): void {
    this.requestedAt = null;
  }

  /**
   * Generates a new key and CSR and sends the CSR. The new key is stored first so the answer can
   * be adopted after a reboot. Returns false if the stream ended before the CSR could be queued.
   */
  async send(sink: CsrSink): Promise<boolean> {
    const deploymentId = this.host.file()?.deploymentId;
    if (deploymentId === undefined) return false;
    this.requestedAt = this.host.clock();
    const spiffeId = applianceSpiffeId(this.host.trustDomain ?? DEFAULT_TRUST_DOMAIN, deploymentId);
    const { keyPem, csrPem } = await generateKeyAndCsr({ spiffeId, commonName: deploymentId });
    // Read again: directives applied meanwhile replace the state object.
    const st = this.host.file();
    if (!st) return false;
    st.pendingPrivateKeyPem = keyPem;
    await this.host.persist();
    if (sink.signal.aborted) return false;
    sink.send(csrPem);
    this.host.log.info({ spiffeId }, "client certificate renewal requested");
    return true;
  }

  /** A RENEW_CERTIFICATE without a certificate: renew on the stream; true once the CSR is sent. */
  async onRequest(directiveId: string, stream: RenewalStream | null): Promise<boolean> {
    if (!stream) {
      // SendHeartbeat (HTTP/1.1) has no field for a CSR: leave it unacked for a streaming connect.
      this.host.reportError(new Error(`directive ${directiveId}: RENEW_CERTIFICATE needs the heartbeat stream to send a CSR; not applied`));
      return false;
    }
    try {
      if (await stream.requestCertificateRenewal()) return true;
      this.host.reportError(new Error(`directive ${directiveId}: stream ended before the certificate renewal was sent; not applied`));
    } catch (error) {
      this.host.reportError(new Error(`directive ${directiveId}: certificate renewal failed`, { cause: error }));
    }
    return false;
  }
}
