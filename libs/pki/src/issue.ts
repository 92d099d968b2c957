import { isIP } from "node:net";
import { CLOCK_SKEW_MS, type CertificateAuthority, type PemKeyPair } from "./ca.js";
import { leafBaseExtensions } from "./leaf-extensions.js";
import { exportPrivateKeyPem, generateKeyPair } from "./keys.js";
import { randomSerialNumber } from "./serial.js";
import { serviceSpiffeId } from "./spiffe.js";
import { x509 } from "./x509.js";

/** Hosts a development server certificate is valid for when none are given. */
export const DEFAULT_SERVER_HOSTS: readonly string[] = ["localhost", "127.0.0.1", "::1"];

/** Options for {@link issueServerAndServiceCertificate}. */
export interface ServiceCertificateOptions {
  /** The app's name (`licensing`, `signing-keys`, …): subject CN and the SPIFFE path. */
  service: string;
  /** SPIFFE trust domain, e.g. `lcp.local`. */
  trustDomain: string;
  /** DNS names and IP addresses the TLS server answers on; default {@link DEFAULT_SERVER_HOSTS}. */
  hosts?: readonly string[];
  /** Validity in days. */
  validityDays: number;
  /** Issue time; defaults to the current time. */
  now?: Date;
}

const DAY_MS = 86_400_000;

/**
 * Issues ONE certificate (new P-256 key) that an app uses both as its TLS server certificate
 * (DNS/IP SANs, EKU serverAuth) and as its client identity when calling other services
 * (URI SAN `spiffe://<td>/service/<app>`, EKU clientAuth). Random 128-bit serial.
 */
export async function issueServerAndServiceCertificate(
  ca: CertificateAuthority,
  options: ServiceCertificateOptions,
): Promise<PemKeyPair> {
  if (!(options.validityDays > 0)) throw new RangeError("validityDays must be positive");
  const spiffeId = serviceSpiffeId(options.trustDomain, options.service);
  const names: x509.JsonGeneralName[] = [];
  for (const host of options.hosts ?? DEFAULT_SERVER_HOSTS) {
    names.push({ type: isIP(host) ? "ip" : "dns", value: host });
  }
  names.push({ type: "url", value: spiffeId });

  const now = options.now ?? new Date();
  const keys = await generateKeyPair("P-256");
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialNumber(),
    subject: [{ CN: [options.service] }],
    issuer: ca.certificate.subjectName,
    notBefore: new Date(now.getTime() - CLOCK_SKEW_MS),
    notAfter: new Date(now.getTime() + options.validityDays * DAY_MS),
    publicKey: keys.publicKey,
    signingKey: ca.signingKey,
    signingAlgorithm: ca.signingAlgorithm,
    extensions: [
      ...(await leafBaseExtensions(ca, keys.publicKey)),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], false),
      new x509.SubjectAlternativeNameExtension(names, false),
    ],
  });
  return { certPem: cert.toString("pem"), keyPem: await exportPrivateKeyPem(keys.privateKey) };
}
